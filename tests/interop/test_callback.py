"""The callback scheme (the seed's §5) and conference rooms, with real phones.

A real HTTP server in the test plays the business back end: it receives the
signed webhook and "pushes" by starting the callee's softphone, which then
registers and is put through (hold mode) or called into the waiting room
(conference mode).  ConfBridge() rooms mix real baresip phones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.pbx_process import DEMO
from tests.helpers.peers import Baresip, require_binary
from tests.interop.conftest import PbxFactory
from tests.interop.test_calls_audio import (
    SENTENCE_A,
    SENTENCE_B,
    assert_heard,
    speech_wav,
    wait_event,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]
SECRET = "s3cret"


class BackEnd:
    """The business back end receiving callback webhooks."""

    def __init__(self) -> None:
        self.notices: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.event = threading.Event()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                stamp = self.headers.get("X-Callway-Timestamp", "")
                expected = (
                    "sha256="
                    + hmac.new(
                        SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256
                    ).hexdigest()
                )
                if not hmac.compare_digest(expected, self.headers.get("X-Callway-Signature", "")):
                    backend.bad_signatures += 1
                backend.notices.append(json.loads(body))
                backend.event.set()
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/push"

    def wait(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.event.wait(timeout), "no webhook received"
        return self.notices[-1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend() -> Iterator[BackEnd]:
    server = BackEnd()
    yield server
    server.close()


def callback_toml(url: str, *, mode: str = "hold", timeout: float = 20, media: str = "ringback"
                  ) -> str:  # fmt: skip
    return (
        f'[callback]\nendpoints = ["8006"]\nmode = "{mode}"\ntimeout = {timeout}\n'
        f'hold_media = "{media}"\nwebhook_url = "{url}"\nwebhook_secret = "{SECRET}"\n'
    )


def test_hold_and_notify_puts_call_through(pbx_factory: PbxFactory, backend: BackEnd,
                                           tmp_path: Path) -> None:  # fmt: skip
    require_binary("baresip")
    pbx = pbx_factory(toml=callback_toml(backend.url))
    sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
    sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
    caller = Baresip(tmp_path / "a", "8005", "8005", pbx.sip_port)
    callee = Baresip(tmp_path / "b", "8006", "8006", pbx.sip_port)
    caller.audio_in, callee.audio_in = sent_a, sent_b
    with caller:
        caller.wait_registered()
        caller.dial(f"sip:8006@127.0.0.1:{pbx.sip_port}")
        wait_event(caller, "CALL_RINGING")  # ringback while the callee is woken
        notice = backend.wait()
        assert backend.bad_signatures == 0
        assert notice["callee"] == "8006" and notice["caller"] == "8005"
        assert notice["mode"] == "hold" and notice["expires_at"] > time.time()
        with callee:  # the push woke the app: it comes online and registers
            callee.wait_registered()
            wait_event(callee, "CALL_ESTABLISHED", timeout=15)
            wait_event(caller, "CALL_ESTABLISHED")
            time.sleep(6)
            caller.hangup()
            wait_event(callee, "CALL_CLOSED")
    first = sorted(callee.rec_dir.glob("dump-*-dec.wav"))[0]
    assert_heard(sent_a, first, "8006 hears 8005 after the callback")


def test_hold_times_out_and_caller_cancel_is_clean(pbx_factory: PbxFactory, backend: BackEnd,
                                                   tmp_path: Path) -> None:  # fmt: skip
    require_binary("baresip")
    pbx = pbx_factory(toml=callback_toml(backend.url, timeout=2))
    caller = Baresip(tmp_path / "a", "8005", "8005", pbx.sip_port)
    with caller:
        caller.wait_registered()
        started = time.monotonic()
        caller.dial(f"sip:8006@127.0.0.1:{pbx.sip_port}")
        backend.wait()
        closed = wait_event(caller, "CALL_CLOSED", timeout=10)
        assert 1.5 < time.monotonic() - started < 8, closed
        # Second call: the caller hangs up while held; a late registration rings nothing.
        backend.event.clear()
        caller.dial(f"sip:8006@127.0.0.1:{pbx.sip_port}")
        backend.wait()
        caller.hangup()
        wait_event(caller, "CALL_CLOSED")
        callee = Baresip(tmp_path / "b", "8006", "8006", pbx.sip_port)
        with callee:
            callee.wait_registered()
            time.sleep(1.5)
            kinds = {event.get("type") for event in callee.events(0.5)}
            assert "CALL_INCOMING" not in kinds and "CALL_ESTABLISHED" not in kinds, kinds
    assert "did not come online" in pbx.stderr_text()


def test_conference_mode_callee_joins_room(pbx_factory: PbxFactory, backend: BackEnd,
                                           tmp_path: Path) -> None:  # fmt: skip
    require_binary("baresip")
    pbx = pbx_factory(toml=callback_toml(backend.url, mode="conference"))
    sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
    sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
    caller = Baresip(tmp_path / "a", "8005", "8005", pbx.sip_port)
    callee = Baresip(tmp_path / "b", "8006", "8006", pbx.sip_port)
    caller.audio_in, callee.audio_in = sent_a, sent_b
    with caller:
        caller.wait_registered()
        caller.dial(f"sip:8006@127.0.0.1:{pbx.sip_port}")
        wait_event(caller, "CALL_ESTABLISHED")  # answered into the waiting room
        notice = backend.wait()
        assert notice["mode"] == "conference" and notice["room"].startswith("callback-")
        with callee:
            callee.wait_registered()
            wait_event(callee, "CALL_ESTABLISHED", timeout=15)
            time.sleep(6)
            caller.hangup()
            wait_event(callee, "CALL_CLOSED", timeout=15)
    assert "joined conference" in pbx.stderr_text()
    first = sorted(callee.rec_dir.glob("dump-*-dec.wav"))[0]
    assert_heard(sent_a, first, "8006 hears 8005 in the room", min_pesq=2.5)


def test_confbridge_room_mixes_phones(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    require_binary("baresip")
    dialplan = DEMO + "exten => 900,1,Answer()\n same => n,ConfBridge(900)\n"
    pbx = pbx_factory(extensions=dialplan)
    sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
    sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
    a = Baresip(tmp_path / "a", "8005", "8005", pbx.sip_port)
    b = Baresip(tmp_path / "b", "8006", "8006", pbx.sip_port)
    a.audio_in, b.audio_in = sent_a, sent_b
    with a, b:
        a.wait_registered()
        b.wait_registered()
        a.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
        wait_event(a, "CALL_ESTABLISHED")
        b.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
        wait_event(b, "CALL_ESTABLISHED")
        time.sleep(6)
        a.hangup()
        b.hangup()
        wait_event(a, "CALL_CLOSED")
        wait_event(b, "CALL_CLOSED")
    heard_by_b = sorted(b.rec_dir.glob("dump-*-dec.wav"))[0]
    assert_heard(sent_a, heard_by_b, "b hears a through the room", min_pesq=2.5)

"""Per-call operations on a real ``callway pbx`` with two baresip phones.

One call 8005 -> 8006 through a PBX process started with ``--log-json`` and
its admin API on a free port shows:

- quality: baresip sends RTCP receiver reports (RFC 3550), the relay reads
  them, and ``/api/v1/calls`` gives each leg a numeric loss, jitter and MOS;
- capture on demand: ``POST /api/v1/calls/{id}/capture`` mid-call writes the
  call's SIP messages from then on (both the caller's and the callee leg's
  dialogs) to a pcap file that ``tshark -r`` decodes: the BYEs and their 200s;
  ``DELETE`` stops it (the console's ``sip capture start|stop`` do the same);
- logs: every JSON log line about the call (its channel task, its relay, the
  capture) carries the caller's Call-ID.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.pbx_process import run_pbx
from tests.helpers.peers import Baresip, require_binary
from tests.helpers.ports import free_tcp_port
from tests.interop.test_calls_audio import wait_event
from tests.interop.test_console import console
from tests.interop.test_tracing import ladder, tshark

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

TOKEN = "quality-test-token"


class Api:
    """A tiny blocking client of the admin API."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(self.base + path, method=method,
                                         headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def calls(self) -> list[dict[str, Any]]:
        status, body = self.call("GET", "/api/v1/calls")
        assert status == 200, body
        return list(body["calls"])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


def test_baresip_call_quality_capture_and_call_id_on_log_lines(tmp_path: Path) -> None:
    require_binary("baresip")
    require_binary("tshark")
    admin_port = free_tcp_port()
    toml = f'[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken = "{TOKEN}"\n'
    with run_pbx(tmp_path, toml=toml, log_args=("--log-json",)) as pbx:
        api = Api(admin_port)
        caller = Baresip(tmp_path / "baresip-8005", "8005", "8005", pbx.sip_port)
        callee = Baresip(tmp_path / "baresip-8006", "8006", "8006", pbx.sip_port)
        with caller, callee:
            caller.wait_registered()
            callee.wait_registered()
            caller.dial(f"sip:8006@127.0.0.1:{pbx.sip_port}")
            wait_event(caller, "CALL_ESTABLISHED")
            wait_event(callee, "CALL_ESTABLISHED")

            def measured() -> bool:
                calls = api.calls()
                return len(calls) == 1 and all(
                    isinstance(leg["quality"]["mos"], float) for leg in calls[0]["legs"]
                )

            wait_until(measured, 20, "both legs have a MOS from the phones' RTCP reports")
            (call,) = api.calls()
            for leg in call["legs"]:
                quality = leg["quality"]
                assert 0.0 <= quality["loss"] < 0.05, leg  # loopback: nothing lost
                assert 0.0 <= quality["jitter_ms"] < 40.0, leg
                assert 4.0 <= quality["mos"] <= 4.5, leg
                assert quality["r_factor"] > 80, leg

            status, started = api.call("POST", f"/api/v1/calls/{call['id']}/capture")
            assert status == 200, started
            assert started["capturing"] and started["id"] == call["id"]
            call_id, pcap = started["call_id"], Path(started["path"])
            assert pcap.parent == pbx.config_dir / "captures"  # STATE_DIR/captures
            assert api.call("POST", "/api/v1/calls/nope/capture")[0] == 404
            again = console(pbx, f"sip capture start {call_id}")  # by Call-ID: the same capture
            assert again.returncode == 0 and f"Capturing call {call_id} to {pcap}" in again.stdout
            missing = console(pbx, "sip capture start nope")
            assert missing.returncode == 1 and "No such call" in missing.stdout

            caller.hangup()
            wait_event(callee, "CALL_CLOSED")
            wait_until(lambda: not api.calls(), 10, "the call is over")
            status, stopped = api.call("DELETE", f"/api/v1/calls/{call['id']}/capture")
            assert (status, stopped["path"]) == (200, str(pcap)), stopped
            assert api.call("DELETE", f"/api/v1/calls/{call['id']}/capture")[0] == 404
            gone = console(pbx, f"sip capture stop {call_id}")
            assert gone.returncode == 1 and "No capture of call" in gone.stdout

        rows = tshark(pcap)
        assert ladder(rows, call_id) == ["BYE", "200"], rows
        callee_ids = {row[0] for row in rows} - {call_id}
        assert len(callee_ids) == 1, rows  # the callee leg's own dialog
        assert ladder(rows, callee_ids.pop()) == ["BYE", "200"], rows

        lines = [json.loads(line) for line in pbx.stderr_text().splitlines()
                 if line.startswith("{")]  # fmt: skip
        mine = [line for line in lines if line.get("call_id") == call_id]
        messages = " | ".join(line["msg"] for line in mine)
        assert "new call PJSIP/8005-" in messages
        assert "media latched" in messages  # from the relay, started by the channel task
        assert "capturing call" in messages
        channel_lines = [line for line in lines if line["logger"] == "callway.channel"]
        assert all(line.get("call_id") == call_id for line in channel_lines), channel_lines

"""ConfBridge rooms with real baresip phones: mix-minus, max members, PIN, join numbers.

Each phone plays its own sine (sox ``synth``: 440, 880, 1320 Hz) and records
what it hears; the FFT of each recording must show the other phones' tones
and not its own (the mix is "everyone but me").
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.pbx_process import _USER_SECTIONS, DEMO
from tests.helpers.peers import Baresip, require_binary
from tests.interop.conftest import PbxFactory
from tests.interop.test_callback import BackEnd, callback_toml
from tests.interop.test_calls_audio import RATE, read_wav, wait_event

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

ROOMS = DEMO + """\
exten => 900,1,Answer()
 same => n,ConfBridge(900)
exten => 901,1,ConfBridge(901,solo\\;max_members=1)
exten => 902,1,ConfBridge(902,default_bridge,locked\\;pin=1234)
exten => _9XXXXX,1,ConfBridge(${EXTEN})
"""
EXTRA_USER = _USER_SECTIONS.format(user="8007")
TONES = {"8005": 440.0, "8006": 880.0, "8007": 1320.0}


def tone_wav(path: Path, frequency: float, seconds: float = 30.0) -> Path:
    """8 kHz S16 mono sine (sox synth), long enough to outlast the call."""
    sox = require_binary("sox")
    subprocess.run(
        [sox, "-n", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(path),
         "synth", str(seconds), "sine", str(frequency), "vol", "0.3"],
        check=True, timeout=30,
    )  # fmt: skip
    return path


def tone_levels(path: Path, frequencies: list[float]) -> dict[float, float]:
    """Amplitude of each frequency (±8 Hz) in the recording, relative to its strongest."""
    samples = read_wav(path)
    assert len(samples) > RATE, f"recording {path} is nearly empty"
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    peak = {f: float(spectrum[(freqs > f - 8) & (freqs < f + 8)].max()) for f in frequencies}
    top = max(peak.values()) or 1.0
    return {f: v / top for f, v in peak.items()}


def assert_hears_others_not_itself(phone: Baresip, path: Path) -> None:
    levels = tone_levels(path, list(TONES.values()))
    own = TONES[phone.user]
    others = [f for u, f in TONES.items() if u != phone.user]
    detail = f"{phone.user} heard {levels}"
    print(detail)
    for frequency in others:
        assert levels[frequency] > 0.2, detail
    assert levels[own] < 0.05, detail


def first_recording(phone: Baresip) -> Path:
    found = sorted(phone.rec_dir.glob("dump-*-dec.wav"))
    assert found, f"{phone.user}: no recording"
    return found[0]


def start_phone(tmp_path: Path, stack: ExitStack, user: str, port: int, **kwargs: object
                ) -> Baresip:  # fmt: skip
    """A baresip for ``user`` playing its tone, stopped when ``stack`` closes."""
    phone = Baresip(tmp_path / user, user, user, port, **kwargs)  # type: ignore[arg-type]
    phone.audio_in = tone_wav(tmp_path / f"{user}.wav", TONES[user])
    stack.enter_context(phone)
    return phone


def test_three_phones_each_hear_the_other_two(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    require_binary("baresip")
    pbx = pbx_factory(extensions=ROOMS, extra_pjsip=EXTRA_USER)
    with ExitStack() as stack:
        group = [start_phone(tmp_path, stack, user, pbx.sip_port) for user in TONES]
        for phone in group:
            phone.wait_registered()
        for phone in group:
            phone.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
            wait_event(phone, "CALL_ESTABLISHED")
        time.sleep(5)
        for phone in group:
            phone.hangup()
            wait_event(phone, "CALL_CLOSED")
    for phone in group:
        assert_hears_others_not_itself(phone, first_recording(phone))
    assert pbx.stderr_text().count("joined conference 900 (") == 3


def test_a_joiner_beyond_max_members_is_hung_up(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    require_binary("baresip")
    pbx = pbx_factory(extensions=ROOMS)
    with ExitStack() as stack:
        first = start_phone(tmp_path, stack, "8005", pbx.sip_port)
        second = start_phone(tmp_path, stack, "8006", pbx.sip_port)
        first.wait_registered()
        second.wait_registered()
        first.dial(f"sip:901@127.0.0.1:{pbx.sip_port}")
        wait_event(first, "CALL_ESTABLISHED")
        second.dial(f"sip:901@127.0.0.1:{pbx.sip_port}")
        wait_event(second, "CALL_ESTABLISHED")  # answered, hears the tone ...
        wait_event(second, "CALL_CLOSED", timeout=8)  # ... and is hung up
        kinds = {e.get("type") for e in first.events(0.2)}
        assert "CALL_CLOSED" not in kinds, "the member already in the room stays"
        first.hangup()
        wait_event(first, "CALL_CLOSED")
    assert "room 901 is full" in pbx.stderr_text()


def test_pin_is_asked_by_dtmf(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    """RFC 4733 digits from baresip: a wrong PIN is refused, the right one lets it in."""
    require_binary("baresip")
    pbx = pbx_factory(extensions=ROOMS)
    with ExitStack() as stack:
        phone = start_phone(tmp_path, stack, "8005", pbx.sip_port)
        phone.wait_registered()
        phone.dial(f"sip:902@127.0.0.1:{pbx.sip_port}")
        wait_event(phone, "CALL_ESTABLISHED")
        time.sleep(1.0)
        phone.command("sndcode", "0000")
        deadline = time.monotonic() + 8
        while "wrong PIN" not in pbx.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # the refusal tone and the next beep
        phone.command("sndcode", "1234")
        deadline = time.monotonic() + 8
        while "joined conference 902" not in pbx.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        phone.hangup()
        wait_event(phone, "CALL_CLOSED")
    text = pbx.stderr_text()
    assert "wrong PIN" in text and "PIN accepted" in text, text[-4000:]
    assert "joined conference 902" in text


@pytest.fixture
def webhook() -> Iterator[BackEnd]:
    server = BackEnd()
    yield server
    server.close()


def test_callback_callee_dials_the_join_number(pbx_factory: PbxFactory, webhook: BackEnd,
                                               tmp_path: Path) -> None:  # fmt: skip
    """Conference mode: the notice carries the room's number; the callee dials in.

    The callee does not register (``regint=0``), so the PBX has nobody to call
    into the room: it only joins by dialling ``_9XXXXX`` -> ``ConfBridge(${EXTEN})``.
    """
    require_binary("baresip")
    pbx = pbx_factory(toml=callback_toml(webhook.url, mode="conference"), extensions=ROOMS)
    with ExitStack() as stack:
        caller = start_phone(tmp_path, stack, "8005", pbx.sip_port)
        callee = start_phone(tmp_path, stack, "8006", pbx.sip_port, regint=0)
        caller.wait_registered()
        caller.dial(f"sip:8006@127.0.0.1:{pbx.sip_port}")
        wait_event(caller, "CALL_ESTABLISHED")  # answered into the waiting room
        notice = webhook.wait()
        number = notice["room_number"]
        assert re.fullmatch(r"9\d{5}", number), notice
        assert notice["room"].startswith("callback-")
        callee.dial(f"sip:{number}@127.0.0.1:{pbx.sip_port}")
        wait_event(callee, "CALL_ESTABLISHED")
        time.sleep(4)
        caller.hangup()
        wait_event(caller, "CALL_CLOSED")
        wait_event(callee, "CALL_CLOSED", timeout=8)  # the room ends with the callback
    text = pbx.stderr_text()
    assert f"join number {number} is callback room {notice['room']}" in text
    for phone in (caller, callee):
        levels = tone_levels(first_recording(phone), list(TONES.values()))
        other = TONES["8006" if phone.user == "8005" else "8005"]
        assert levels[other] == 1.0 and levels[TONES[phone.user]] < 0.05, (phone.user, levels)

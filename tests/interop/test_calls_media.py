"""Media and session flows through ``callway pbx``: early media, offerless re-INVITE,
UPDATE, RFC 4028 session timers, rtp_timeout, MusicOnHold() and u-law/a-law transcoding.

Signalling is driven by sipp (exact responses checked); where the audio path
matters, the caller's media address is a UDP socket of the test (sipp
``-key rtp_port N`` puts it in the SDP) that counts the RTP it receives, or a
baresip phone whose recording is compared with what was sent.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import require_binary
from tests.helpers.ports import free_udp_port
from tests.interop.conftest import PbxFactory
from tests.interop.test_calls_audio import (
    PROMPTS,
    SENTENCE_A,
    SENTENCE_B,
    align,
    assert_heard,
    baresip_phone,
    read_wav,
    recording,
    speech_wav,
    wait_event,
)
from tests.interop.test_calls_sipp import (
    BYE_OK,
    R180,
    R200,
    R401,
    assert_idle,
    callee,
    caller,
    finals,
    methods,
    ok,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


@dataclass
class RtpSink:
    """A UDP socket standing in for a phone's RTP port: it counts what arrives."""

    port: int
    arrivals: list[float] = field(default_factory=list)
    payload_types: set[int] = field(default_factory=set)

    @property
    def packets(self) -> int:
        return len(self.arrivals)

    def span(self) -> float:
        """Seconds between the first and the last packet."""
        return self.arrivals[-1] - self.arrivals[0] if len(self.arrivals) > 1 else 0.0


@contextmanager
def rtp_sink() -> Iterator[RtpSink]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", free_udp_port()))
    sock.settimeout(0.1)
    sink = RtpSink(sock.getsockname()[1])
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) >= 12 and data[0] >> 6 == 2:
                sink.arrivals.append(time.monotonic())
                sink.payload_types.add(data[1] & 0x7F)

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        stop.set()
        thread.join(2)
        sock.close()


def received_bodies(messages: str, start: str) -> list[str]:
    """Bodies of received messages whose start line begins with ``start``."""
    bodies = []
    for block in re.split(r"^-{10,}.*$", messages, flags=re.MULTILINE):
        head, _, rest = block.strip("\n").partition("\n")
        if "message received" in head and rest.lstrip("\n").startswith(start):
            bodies.append(rest.split("\n\n", 1)[-1] if "\n\n" in rest else "")
    return bodies


def media_port(body: str) -> int:
    match = re.search(r"^m=audio (\d+)", body, re.MULTILINE)
    assert match, body
    return int(match.group(1))


# --------------------------------------------------------------------------
# 183 Session Progress: early media through the relay
# --------------------------------------------------------------------------
def test_183_with_sdp_relays_early_media(pbx: PbxProcess, tmp_path: Path) -> None:
    with rtp_sink() as sink, callee(pbx, "call_uas_early.xml", tmp_path) as uas:
        uac = caller(
            pbx, "call_uac_early.xml", tmp_path, extra=["-key", "rtp_port", str(sink.port)]
        )
        b = uas.result()
        time.sleep(0.2)
    ok(uac)
    ok(b)
    assert finals(uac) == [
        R401, "SIP/2.0 183 Session Progress (INVITE)", R200, BYE_OK
    ], uac.describe()  # fmt: skip
    (early,) = received_bodies(uac.messages(), "SIP/2.0 183")
    (final,) = received_bodies(uac.messages(), "SIP/2.0 200 OK")[:1]
    assert media_port(early) == media_port(final), (early, final)  # the same relay
    # the callee's audio flowed for the 2 s between its 183 and its 200 (+ 0.2 s after)
    assert sink.packets >= 60, (sink.packets, sink.span())
    assert sink.span() >= 1.5, (sink.packets, sink.span())
    assert sink.payload_types == {8}, sink.payload_types  # g711a.pcap, relayed untouched
    assert_idle(pbx)


# --------------------------------------------------------------------------
# re-INVITE without SDP, UPDATE
# --------------------------------------------------------------------------
def test_reinvite_without_sdp_takes_the_answer_from_the_ack(
    pbx: PbxProcess, tmp_path: Path
) -> None:
    """The PBX offers in its 200; the ACK's answer moves the caller's media (RFC 3264 §8)."""
    with rtp_sink() as sink, callee(pbx, "call_uas_media.xml", tmp_path) as uas:
        uac = caller(
            pbx, "call_uac_reinvite_nosdp.xml", tmp_path, extra=["-key", "rtp_port", str(sink.port)]
        )
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac) == [R401, "SIP/2.0 180 Ringing (INVITE)", R200, R200, BYE_OK], uac.describe()
    offer = received_bodies(uac.messages(), "SIP/2.0 200 OK")[1]
    assert "a=sendrecv" in offer and "PCMU/8000" in offer, offer
    assert methods(b) == ["INVITE", "ACK", "BYE"], b.describe()  # nothing forwarded
    # the callee's audio now reaches the address given in the ACK
    assert sink.packets >= 40, sink.packets
    assert_idle(pbx)


def test_update_with_sdp_is_relayed(pbx: PbxProcess, tmp_path: Path) -> None:
    """RFC 3311: an UPDATE offer reaches the callee as a fresh UPDATE offer from the relay."""
    with callee(pbx, "call_uas_update.xml", tmp_path) as uas:
        uac = caller(pbx, "call_uac_update.xml", tmp_path)
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac) == [
        R401, "SIP/2.0 180 Ringing (INVITE)", R200, "SIP/2.0 200 OK (UPDATE)", BYE_OK
    ], uac.describe()  # fmt: skip
    assert methods(b) == ["INVITE", "ACK", "UPDATE", "BYE"], b.describe()
    first_offer, update_offer = (
        received_bodies(b.messages(), "INVITE")[0],
        received_bodies(b.messages(), "UPDATE")[0],
    )
    assert media_port(first_offer) == media_port(update_offer)  # still the PBX's relay port
    assert_idle(pbx)


# --------------------------------------------------------------------------
# RFC 4028 session timers
# --------------------------------------------------------------------------
def test_session_timer_is_negotiated_and_refreshed_by_update(
    pbx: PbxProcess, tmp_path: Path
) -> None:
    """200 says ``Session-Expires: 1800;refresher=uac`` + ``Require: timer``; the
    caller's UPDATE refresh is answered by the PBX and not forwarded."""
    with callee(pbx, "call_uas.xml", tmp_path) as uas:
        uac = caller(pbx, "call_uac_timers.xml", tmp_path, extra=["-key", "sess_expires", "1800"])
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac) == [
        R401, "SIP/2.0 180 Ringing (INVITE)", R200, "SIP/2.0 200 OK (UPDATE)", BYE_OK
    ], uac.describe()  # fmt: skip
    assert "Session-Expires: 1800;refresher=uac" in uac.messages()
    assert methods(b) == ["INVITE", "ACK", "BYE"], b.describe()
    assert_idle(pbx)


def test_session_interval_too_small_gets_422(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    pbx = pbx_factory(endpoint_options={"8005": "timers_min_se=120\ntimers_sess_expires=600"})
    uac = caller(pbx, "call_uac_timers_422.xml", tmp_path, extra=["-key", "sess_expires", "100"])
    ok(uac)
    assert finals(uac) == [R401, "SIP/2.0 422 Session Interval Too Small (INVITE)"], uac.describe()
    assert re.search(r"^Min-SE:\s*120\s*$", uac.messages(), re.MULTILINE), uac.describe()
    assert_idle(pbx)


# --------------------------------------------------------------------------
# rtp_timeout
# --------------------------------------------------------------------------
def test_rtp_timeout_hangs_up_both_sides(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    """Neither phone sends RTP: with ``rtp_timeout=2`` the PBX sends BYE both ways."""
    pbx = pbx_factory(endpoint_options={"8005": "rtp_timeout=2"})
    with callee(pbx, "call_uas.xml", tmp_path) as uas:
        started = time.monotonic()
        uac = caller(pbx, "call_uac_callee_bye.xml", tmp_path, timeout=15)
        elapsed = time.monotonic() - started
        b = uas.result()
    ok(uac)
    ok(b)
    assert methods(uac) == ["BYE"], uac.describe()
    assert methods(b) == ["INVITE", "ACK", "BYE"], b.describe()
    assert 1.8 < elapsed < 5.0, elapsed
    assert "no RTP on leg" in pbx.stderr_text()
    assert_idle(pbx)


def test_a_held_call_outlives_rtp_timeout(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    """No RTP at all, ``rtp_timeout=1``: held 2.5 s (``rtp_timeout_hold=0``), the call stays up.

    Asterisk counts ``rtp_timeout`` off hold only (a held phone sends no
    RTP, RFC 3264 §8.4); after the resume the silence counts afresh, so
    the BYE 0.2 s later is the caller's own.
    """
    pbx = pbx_factory(endpoint_options={"8005": "rtp_timeout=1\nrtp_timeout_hold=0"})
    with callee(pbx, "call_uas_hold.xml", tmp_path) as uas:
        uac = caller(pbx, "call_uac_hold_long.xml", tmp_path, timeout=20)
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac) == [R401, R180, R200, R200, R200, BYE_OK], uac.describe()
    assert methods(b) == ["INVITE", "ACK", "INVITE", "ACK", "INVITE", "ACK", "BYE"], b.describe()
    assert "no RTP on leg" not in pbx.stderr_text()
    assert_idle(pbx)


def test_rtp_timeout_hold_hangs_up_a_call_held_too_long(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    """``rtp_timeout_hold=1``: the same call is hung up while held, by the PBX."""
    pbx = pbx_factory(endpoint_options={"8005": "rtp_timeout=1\nrtp_timeout_hold=1"})
    with callee(pbx, "call_uas_hold.xml", tmp_path) as uas:
        uac = caller(pbx, "call_uac_hold_long.xml", tmp_path, timeout=20)
        b = uas.result()
    assert "BYE" in methods(uac), uac.describe()  # the PBX's, during the hold
    assert methods(b)[-1] == "BYE", b.describe()  # both sides
    assert "no RTP on leg a for 1s (on hold: rtp_timeout_hold)" in pbx.stderr_text()
    assert_idle(pbx)


# --------------------------------------------------------------------------
# MusicOnHold() and transcoding, heard by baresip
# --------------------------------------------------------------------------
MOH_EXTENSIONS = """\
[from-external]
exten => _80XX,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN})
exten => 800,1,Answer()
 same => n,MusicOnHold()
"""


def test_music_on_hold_sends_the_default_class(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    require_binary("baresip")
    pbx = pbx_factory(extensions=MOH_EXTENSIONS)
    quiet = speech_wav(tmp_path / "quiet.wav", "", voice="en-us")
    with baresip_phone(tmp_path, pbx, "8005", quiet) as phone:
        phone.wait_registered()
        phone.dial(f"sip:800@127.0.0.1:{pbx.sip_port}")
        wait_event(phone, "CALL_ESTABLISHED")
        time.sleep(4.0)
        phone.hangup()
        wait_event(phone, "CALL_CLOSED")
    heard = read_wav(recording(phone.rec_dir))
    assert np.sqrt(np.mean(heard**2)) > 0.01, "the music is silent"
    music = read_wav(PROMPTS / "moh-default.wav")[: 3 * 8000]  # the first 3 s
    _, correlation = align(music[8000:], heard)
    assert correlation >= 0.9, correlation
    assert_idle(pbx)


def test_ulaw_alaw_transcoding_both_ways(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    """8005 may only use a-law, 8006 only u-law: the PBX transcodes and both hear each other."""
    require_binary("baresip")
    pbx = pbx_factory(endpoint_options={"8005": "disallow=all\nallow=alaw"})
    sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
    sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
    phone_a = baresip_phone(tmp_path, pbx, "8005", sent_a)
    phone_a.extra_account_params = ";audio_codecs=pcma"
    phone_b = baresip_phone(tmp_path, pbx, "8006", sent_b)
    with phone_a as a, phone_b as b:
        a.wait_registered()
        b.wait_registered()
        a.dial(f"sip:8006@127.0.0.1:{pbx.sip_port}")
        wait_event(a, "CALL_ESTABLISHED")
        wait_event(b, "CALL_ESTABLISHED")
        time.sleep(6.0)
        a.hangup()
        wait_event(b, "CALL_CLOSED")
        wait_event(a, "CALL_CLOSED")
    log = pbx.stderr_text()
    assert "transcoding alaw <-> ulaw" in log, log[-3000:]
    sdp_a = "\n".join(m.text for m in a.sip_trace_messages() if "m=audio" in m.text)
    sdp_b = "\n".join(m.text for m in b.sip_trace_messages() if "m=audio" in m.text)
    assert re.search(r"m=audio \d+ RTP/AVP 8\b", sdp_a), sdp_a
    assert "PCMA" not in sdp_b and re.search(r"m=audio \d+ RTP/AVP 0\b", sdp_b), sdp_b
    # two G.711 quantisations (a-law -> linear -> u-law): allow a little less than 3.8
    assert_heard(sent_a, recording(b.rec_dir), "u-law 8006 hears a-law 8005", min_pesq=3.5)
    assert_heard(sent_b, recording(a.rec_dir), "a-law 8005 hears u-law 8006", min_pesq=3.5)
    assert_idle(pbx)

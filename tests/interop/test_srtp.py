"""SRTP with SDES keys (RFC 3711, RFC 4568) through ``callway pbx``, with real phones.

- baresip 8005 over TLS with ``mediaenc=srtp-mand`` (endpoint
  ``media_encryption=sdes``) calls baresip 8006 on plain UDP/RTP: both hear
  each other, and a tshark capture of the PBX's ports during the call shows
  no SIP or SDP text on the TLS port and no PCMU in clear on the SRTP leg
  (the SRTP payloads differ from the plain leg's for the same RTP packets).
- A plain ``RTP/AVP`` offer from an SRTP-mandatory endpoint gets 488 (sipp).
- pjsua2 over TLS with SRTP mandatory calls baresip over TLS + SRTP.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.peers import Baresip, require_binary, require_pjsua2
from tests.helpers.ports import free_port_pair_block, free_rtp_range, free_sip_port
from tests.interop.conftest import PbxFactory
from tests.interop.test_calls_audio import (
    CALL_SECONDS,
    PJSUA2_CALL_SCRIPT,
    SENTENCE_A,
    SENTENCE_B,
    assert_heard,
    recording,
    speech_wav,
    wait_event,
)
from tests.interop.test_calls_sipp import R401, caller, finals, ok, wait_idle
from tests.interop.test_tls import make_cert, tls_transport

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

SDES = "media_encryption=sdes"
# sip methods, status lines and SDP lines that must never cross the TLS port in clear
CLEAR_TEXT = (b"INVITE sip:", b"REGISTER sip:", b"SIP/2.0", b"m=audio", b"a=crypto", b"inline:")


@dataclass
class SrtpBaresip(Baresip):
    """baresip with the ``srtp`` module loaded (``mediaenc=srtp-mand`` needs it)."""

    def config_text(self) -> str:
        return super().config_text() + "module srtp.so\n"


def srtp_phone(workdir: Path, user: str, port: int, audio: Path, *, tls: bool) -> Baresip:
    """A baresip account; over TLS it requires SRTP (``mediaenc=srtp-mand``)."""
    if tls:
        phone: Baresip = SrtpBaresip(
            workdir, user, user, port, transport="tls", extra_account_params=";mediaenc=srtp-mand"
        )
    else:
        phone = Baresip(workdir, user, user, port)
    phone.audio_in = audio
    return phone


class Capture:
    """tshark on loopback for the given capture filter, stopped on demand."""

    def __init__(self, path: Path, capture_filter: str) -> None:
        tshark = require_binary("tshark")
        if os.geteuid() != 0:
            pytest.skip("capturing on lo needs root")
        self.path = path
        self.log = path.with_suffix(".log")
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [tshark, "-i", "lo", "-f", capture_filter, "-w", str(path), "-a", "duration:60"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while b"Capturing on" not in self.log.read_bytes():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"tshark did not start: {self.log.read_text(errors='replace')}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def fields(self, display_filter: str, *fields: str) -> list[list[str]]:
        args = [shutil.which("tshark") or "tshark", "-r", str(self.path), "-Y", display_filter,
                "-T", "fields", "-E", "separator=\t"]  # fmt: skip
        for name in fields:
            args += ["-e", name]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
        return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def udp_packets(capture: Capture) -> list[tuple[int, int, bytes]]:
    """(source port, destination port, payload) of every UDP datagram captured."""
    rows = capture.fields("udp && !icmp", "udp.srcport", "udp.dstport", "udp.payload")
    return [(int(r[0]), int(r[1]), bytes.fromhex(r[2])) for r in rows if len(r) == 3 and r[2]]


def rtp_key(packet: bytes) -> bytes:
    """SSRC, sequence number and timestamp: what the relay leaves unchanged (RFC 3550 §5.1)."""
    return packet[2:12]


def assert_srtp_leg_hides_audio(
    packets: list[tuple[int, int, bytes]],
    srtp_phone_ports: tuple[int, int],
    plain_phone_ports: tuple[int, int],
) -> None:
    """Each direction's SRTP packets hide the PCMU the plain leg carries for the same packet."""

    def on(ports: tuple[int, int], port: int) -> bool:
        return ports[0] <= port <= ports[1] and port % 2 == 0  # RTP, not RTCP

    checked = 0
    for towards_srtp in (True, False):
        if towards_srtp:  # plain phone -> PBX, then PBX -> SRTP phone
            plain = [p for s, _, p in packets if on(plain_phone_ports, s)]
            secret = [p for _, d, p in packets if on(srtp_phone_ports, d)]
        else:  # SRTP phone -> PBX, then PBX -> plain phone
            secret = [p for s, _, p in packets if on(srtp_phone_ports, s)]
            plain = [p for _, d, p in packets if on(plain_phone_ports, d)]
        assert plain and secret, ("no RTP captured", len(plain), len(secret), towards_srtp)
        assert all(p[1] & 0x7F == 0 for p in plain), "the plain leg carries PCMU (PT 0)"
        clear = {rtp_key(p): p[12:] for p in plain}
        pairs = [(clear[rtp_key(p)], p[12:]) for p in secret if rtp_key(p) in clear]
        assert len(pairs) >= len(secret) // 2, (len(pairs), len(secret))
        for audio, hidden in pairs:
            # the SRTP payload is the PCMU payload encrypted, followed by the auth tag
            assert len(hidden) - len(audio) in (4, 10), (len(hidden), len(audio))
            assert hidden[: len(audio)] != audio
        same = sum(a == b for audio, hidden in pairs for a, b in zip(audio, hidden, strict=False))
        total = sum(len(audio) for audio, _ in pairs)
        assert same / total < 0.02, f"{same} of {total} payload bytes in clear"  # random: 1/256
        # PCMU silence/speech repeats byte values; AES-CM output does not
        most = Counter(b for _, hidden in pairs for b in hidden).most_common(1)[0][1]
        assert most / sum(len(h) for _, h in pairs) < 0.02
        checked += len(pairs)
    assert checked > 100


def assert_tls_port_hides_sip(capture: Capture, tls_port: int) -> None:
    rows = capture.fields(f"tcp.port == {tls_port} && tcp.len > 0", "tcp.payload")
    stream = b"".join(bytes.fromhex(row[0]) for row in rows if row and row[0])
    assert len(stream) > 2000, f"too little TLS traffic captured ({len(stream)} bytes)"
    for text in CLEAR_TEXT:
        assert text not in stream, f"{text!r} in clear on the TLS port"
    # TLS records only: handshake (22) when the capture saw the connection open,
    # application data (23) when it started on an established connection.
    assert stream[0] in (0x16, 0x17), f"not a TLS record: first byte {stream[0]}"
    assert stream[1] == 0x03, "not TLS record framing (version 3.x)"


def test_baresip_srtp_over_tls_calls_plain_baresip(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    require_binary("baresip")
    cert, key, _ca = make_cert(tmp_path / "certs")
    tls_port = free_sip_port()
    rtp_first, rtp_last = free_rtp_range(40)
    pbx = pbx_factory(
        extra_pjsip=tls_transport(tls_port, cert, key),
        endpoint_options={"8005": SDES},
        toml=f'[rtp]\nbind = "127.0.0.1"\nstart = {rtp_first}\nend = {rtp_last}\n',
    )
    sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
    sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
    capture = Capture(
        tmp_path / "call.pcap", f"udp portrange {rtp_first}-{rtp_last} or tcp port {tls_port}"
    )
    try:
        with (
            srtp_phone(tmp_path / "b8005", "8005", tls_port, sent_a, tls=True) as secure,
            srtp_phone(tmp_path / "b8006", "8006", pbx.sip_port, sent_b, tls=False) as plain,
        ):
            secure.wait_registered(timeout=15)
            plain.wait_registered()
            secure.dial(f"sip:8006@127.0.0.1:{tls_port};transport=tls")
            wait_event(secure, "CALL_ESTABLISHED")
            wait_event(plain, "CALL_ESTABLISHED")
            time.sleep(CALL_SECONDS)
            secure.hangup()
            wait_event(plain, "CALL_CLOSED")
            wait_event(secure, "CALL_CLOSED")
            secure_log = secure.log_text()
    finally:
        capture.stop()
    assert "RTP/SAVP" in secure_log, "baresip did not offer SRTP"
    assert_heard(sent_a, recording(plain.rec_dir), "plain 8006 hears SRTP 8005")
    assert_heard(sent_b, recording(secure.rec_dir), "SRTP 8005 hears plain 8006")
    assert_tls_port_hides_sip(capture, tls_port)
    assert_srtp_leg_hides_audio(udp_packets(capture), secure.rtp_ports, plain.rtp_ports)
    assert "inline:" not in pbx.stderr_text(), "an SRTP key reached the PBX log"


def test_plain_rtp_offer_to_srtp_mandatory_endpoint_gets_488(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    pbx = pbx_factory(endpoint_options={"8005": SDES})
    uac = caller(pbx, "call_uac_rejected_plain_rtp.xml", tmp_path)
    ok(uac)
    assert finals(uac) == [R401, "SIP/2.0 488 Not Acceptable Here (INVITE)"], uac.describe()
    wait_idle(pbx)


def test_pjsua2_srtp_over_tls_calls_baresip_srtp_over_tls(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    require_binary("baresip")
    require_pjsua2()
    cert, key, _ca = make_cert(tmp_path / "certs")
    tls_port = free_sip_port()
    pbx = pbx_factory(
        extra_pjsip=tls_transport(tls_port, cert, key),
        endpoint_options={"8005": SDES, "8006": SDES},
    )
    sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
    sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
    received_a = tmp_path / "pjsua2-received.wav"
    with srtp_phone(tmp_path / "b8006", "8006", tls_port, sent_b, tls=True) as callee:
        callee.wait_registered(timeout=15)
        first, last = free_rtp_range(10)
        argv = [
            sys.executable, str(PJSUA2_CALL_SCRIPT),
            "--registrar", f"sip:127.0.0.1:{tls_port};transport=tls",
            "--user", "8005", "--password", "8005",
            "--dial", f"sip:8006@127.0.0.1:{tls_port};transport=tls",
            "--play", str(sent_a), "--record", str(received_a),
            "--seconds", str(CALL_SECONDS), "--tls", "--srtp",
            "--local-port", str(free_port_pair_block(1)), "--rtp-port", str(first),
            "--rtp-range", str(last - first),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        output = done.stdout + done.stderr[-6000:]
        assert done.returncode == 0, output
        assert "CONFIRMED" in done.stdout, output
        assert "MEDIA SRTP" in done.stdout, output
        wait_event(callee, "CALL_CLOSED")
        callee_log = callee.log_text()
    assert "RTP/SAVP" in callee_log
    assert_heard(sent_a, recording(callee.rec_dir), "baresip 8006 (SRTP) hears pjsua2 8005 (SRTP)")
    assert_heard(
        sent_b, received_a, "pjsua2 8005 (SRTP) hears baresip 8006 (SRTP)",
        min_correlation=0.3, min_pesq=3.5,
    )  # fmt: skip
    assert "inline:" not in pbx.stderr_text()

"""Dialplan contexts stop toll fraud; hostile digest bytes get an answer, not a crash.

An endpoint lands in its ``context=`` and nowhere else (Asterisk's rule): a
pattern such as ``_9.`` (an outside line) defined only in ``[internal]`` is
404 Not Found to an endpoint in ``from-external``, exactly like an extension
that does not exist, while an endpoint in ``internal`` reaches it.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import SCENARIOS, require_binary, run_sipp
from tests.interop.conftest import PbxFactory
from tests.interop.test_calls_sipp import finals, ok

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

# The outside line exists only in [internal]: from-external reaches the
# extensions and nothing else.
TOLL_EXTENSIONS = """\
[internal]
exten => _9.,1,NoOp(outside line)
 same => n,Dial(PJSIP/8005)

[from-external]
exten => _80XX,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN})
"""

R401 = "SIP/2.0 401 Unauthorized (INVITE)"


def _call(pbx: PbxProcess, tmp_path: Path, user: str, number: str) -> list[str]:
    """``user`` (digest user = password) calls ``number``; the responses it got."""
    require_binary("sipp")
    text = (SCENARIOS / "call_uac_rejected.xml").read_text()
    scenario = tmp_path / f"call_from_{user}.xml"
    scenario.write_text(text.replace('"8005" <sip:8005@', f'"{user}" <sip:{user}@'))
    result = run_sipp(
        scenario,
        f"127.0.0.1:{pbx.sip_port}",
        service=number,
        extra_args=["-au", user, "-ap", user],
        timeout=15,
        trace_dir=tmp_path / f"sipp-{user}-{number}",
    )
    ok(result)
    return finals(result)


def test_from_external_cannot_reach_an_internal_only_pattern(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    pbx = pbx_factory(
        extensions=TOLL_EXTENSIONS,
        endpoint_options={"8006": "context=internal"},
        log_args=("-v",),  # the dialplan's Executing lines in the log
    )
    # 8005 is in from-external: the outside line is not there.
    for number in ("9011441234567", "90", "900123"):
        assert _call(pbx, tmp_path, "8005", number) == [R401, "SIP/2.0 404 Not Found (INVITE)"]
    # Control: 8006 is in [internal], where _9. matches and Dial() runs (8005 is not
    # registered, so the call ends 480, not 404).
    assert _call(pbx, tmp_path, "8006", "9011441234567") == [
        R401,
        "SIP/2.0 480 Temporarily Unavailable (INVITE)",
    ]
    log = pbx.stderr_text()
    assert "outside line" in log  # only 8006's call ran the [internal] step


def _request(port: int, data: bytes, *, timeout: float = 3.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65535)


def _register(port: int, authorization: bytes, call_id: str) -> bytes:
    return (
        b"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK" + call_id.encode() + b";rport\r\n"
        b"Max-Forwards: 70\r\nTo: <sip:8005@127.0.0.1>\r\n"
        b"From: <sip:8005@127.0.0.1>;tag=hostile\r\n"
        b"Call-ID: " + call_id.encode() + b"\r\nCSeq: 1 REGISTER\r\n"
        b"Contact: <sip:8005@127.0.0.1:5999>\r\n"
        b"Authorization: " + authorization + b"\r\nContent-Length: 0\r\n\r\n"
    )


def test_non_utf8_digest_credentials_are_answered(pbx: PbxProcess) -> None:
    """Found by the fuzzer: a non-UTF-8 byte in a digest field used to raise in hashing."""
    nonce = ""
    challenge = _request(pbx.sip_port, _register(pbx.sip_port, b'Digest realm="x"', "c0"))
    for line in challenge.split(b"\r\n"):
        if line.lower().startswith(b"www-authenticate:") and b'nonce="' in line:
            nonce = line.split(b'nonce="', 1)[1].split(b'"', 1)[0].decode()
    assert nonce, challenge
    for number, field in enumerate((b"username", b"uri", b"cnonce", b"response"), start=1):
        values = {
            b"username": b'"8005"', b"uri": b'"sip:127.0.0.1"', b"cnonce": b'"abc"',
            b"response": b'"' + b"0" * 32 + b'"',
        }  # fmt: skip
        values[field] = values[field][:-1] + b'\xff\xfe"'
        authorization = (
            b'Digest realm="asterisk", nonce="'
            + nonce.encode()
            + b'", qop=auth, nc=00000001, '
            + b", ".join(k + b"=" + v for k, v in values.items())
        )
        reply = _request(pbx.sip_port, _register(pbx.sip_port, authorization, f"c{number}"))
        status = reply.split(b"\r\n", 1)[0]
        assert status in (b"SIP/2.0 401 Unauthorized", b"SIP/2.0 403 Forbidden"), (field, reply)
    time.sleep(0.2)
    assert pbx.running
    assert "Traceback" not in pbx.stderr_text()
    options = (
        b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKo\r\n"
        b"Max-Forwards: 70\r\nTo: <sip:s@127.0.0.1>\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\n"
        b"Call-ID: probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    assert _request(pbx.sip_port, options).startswith(b"SIP/2.0 200")

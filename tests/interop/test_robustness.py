"""Bad input never stops the server; the demo starts on built-in defaults.

The RFC 4475 messages that must be rejected are sent over UDP and TCP to a
running ``callway pbx``: each answerable one gets its 4xx/5xx, and the PBX
keeps answering a sipsak probe afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import require_binary, run_sipsak
from tests.helpers.ports import free_sip_port

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TORTURE = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "rfc4475"
# RFC 4475 §3.1.2 / §3.3: requests that must be answered with an error status.
EXPECTED = {
    "badinv01.dat": 400, "clerr.dat": 400, "ncl.dat": 400, "scalar02.dat": 400,
    "quotbal.dat": 400, "ltgtruri.dat": 400, "lwsruri.dat": 400, "lwsstart.dat": 400,
    "escruri.dat": 400, "baddate.dat": 400, "regbadct.dat": 400, "badaspec.dat": 400,
    "badvers.dat": 505, "mismatch01.dat": 400, "insuf.dat": 400, "unkscm.dat": 416,
    "bext01.dat": 420, "multi01.dat": 400, "mcl01.dat": 400,
}  # fmt: skip


def _status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def test_malformed_udp_gets_answers_and_server_keeps_serving(pbx: PbxProcess) -> None:
    require_binary("sipsak")
    if not TORTURE.is_dir():
        pytest.fail(f"RFC 4475 vectors not found at {TORTURE}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    got: dict[str, int] = {}
    try:
        for name, status in EXPECTED.items():
            sock.sendto((TORTURE / name).read_bytes(), ("127.0.0.1", pbx.sip_port))
            try:
                status = 100
                while status < 200:  # an INVITE gets 100 Trying first
                    status = _status(sock.recvfrom(65535)[0])
            except TimeoutError:
                continue  # answered to the Via address of the message, not to us
            got[name] = status
        for junk in (b"\x00" * 100, b"garbage\r\n\r\n", os.urandom(1400), b"SIP/2.0 999 x\r\n\r\n"):
            sock.sendto(junk, ("127.0.0.1", pbx.sip_port))
    finally:
        sock.close()
    wrong = {name: (got[name], EXPECTED[name]) for name in got if got[name] != EXPECTED[name]}
    assert not wrong, wrong
    assert len(got) >= 10, f"too few answers: {got}"
    assert run_sipsak(f"sip:s@127.0.0.1:{pbx.sip_port}") == 0
    assert pbx.running


def test_malformed_tcp_stream_is_closed_and_server_keeps_serving(pbx: PbxProcess) -> None:
    require_binary("sipsak")
    for payload in (
        b"INVITE sip:x@y SIP/2.0\r\nContent-Length: abc\r\n\r\n",
        b"\x16\x03\x01\x02\x00" + os.urandom(500),  # a TLS hello on the TCP port
        (TORTURE / "badinv01.dat").read_bytes(),
    ):
        with socket.create_connection(("127.0.0.1", pbx.sip_port), timeout=2) as conn:
            conn.sendall(payload)
            conn.settimeout(1.0)
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                conn.recv(65535)
    assert run_sipsak(f"sip:s@127.0.0.1:{pbx.sip_port}") == 0
    assert pbx.running


def test_demo_starts_with_seed_defaults(tmp_path: Path) -> None:
    """`callway demo`: the seed's PBX, a balancer in front of it and a STUN server."""
    require_binary("sipsak")
    from callway.stun.message import MessageClass, Method, StunMessage, decode, encode

    port, lb_port, stun_port = free_sip_port(), free_sip_port(), free_sip_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "callway", "demo", "--port", str(port), "--state-dir",
         str(tmp_path / "state"), "--balancer-port", str(lb_port), "--stun-port", str(stun_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and run_sipsak(f"sip:s@127.0.0.1:{port}") != 0:
            time.sleep(0.3)
        assert run_sipsak(f"sip:s@127.0.0.1:{port}") == 0
        assert run_sipsak(f"sip:s@127.0.0.1:{lb_port}") == 0  # the balancer answers too
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            request = StunMessage(Method.BINDING, MessageClass.REQUEST, os.urandom(12))
            sock.sendto(encode(request), ("127.0.0.1", stun_port))
            answer = decode(sock.recvfrom(2048)[0])
            assert answer.transaction_id == request.transaction_id
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    text = output.decode(errors="replace")
    assert "8005" in text and "8006" in text and "password" in text, text[-3000:]
    # The admin line names where the admin API listened, or says it did not start.
    admin = re.search(r"Admin page: (http://\S+/|not started)", text)
    assert admin is not None, text[-3000:]
    if admin.group(1) == "not started":
        assert "admin API not started" in text, text[-3000:]
    else:
        assert f"admin API and dashboard on {admin.group(1)}" in text, text[-3000:]


def test_stun_keepalive_on_sip_port(pbx: PbxProcess) -> None:
    """RFC 5626 §4.4.2: a STUN Binding on the SIP UDP port gets our view of the client."""
    from callway.stun.message import MessageClass, Method, StunMessage, decode, encode

    request = StunMessage(Method.BINDING, MessageClass.REQUEST, os.urandom(12))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    try:
        sock.sendto(encode(request), ("127.0.0.1", pbx.sip_port))
        answer = decode(sock.recvfrom(2048)[0])
        mapped = answer.address(0x0020)  # XOR-MAPPED-ADDRESS
        assert mapped is not None
        assert (mapped.host, mapped.port) == sock.getsockname()
        assert answer.transaction_id == request.transaction_id
    finally:
        sock.close()
    assert run_sipsak(f"sip:s@127.0.0.1:{pbx.sip_port}") == 0

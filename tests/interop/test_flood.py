"""Flood protection (pike) and scanner filtering against a running PBX.

A sipp INVITE flood from 127.0.0.2 far beyond what the PBX serves gets that
source banned within a second, and phones on 127.0.0.1 keep registering and
calling meanwhile.  Known scanners' requests are dropped unanswered.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.peers import Baresip, require_binary
from tests.helpers.ports import free_sip_port
from tests.interop.conftest import PbxFactory
from tests.interop.test_calls_audio import wait_event

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

SECURITY = "[security]\npike_limit = 200\npike_window = 1.0\npike_ban = 60\ndrop_scanners = true\n"


def options(port: int, user_agent: str) -> bytes | None:
    branch = "z9hG4bK" + os.urandom(6).hex()
    request = (
        f"OPTIONS sip:s@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch={branch};rport\r\n"
        f"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:s@127.0.0.1>\r\n"
        f"Call-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        f"User-Agent: {user_agent}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(1.0)
        sock.sendto(request, ("127.0.0.1", port))
        try:
            return sock.recvfrom(4096)[0]
        except TimeoutError:
            return None


def test_scanner_requests_dropped(pbx_factory: PbxFactory) -> None:
    pbx = pbx_factory(toml=SECURITY)
    assert options(pbx.sip_port, "friendly-scanner") is None
    assert options(pbx.sip_port, "sipvicious 0.3") is None
    answer = options(pbx.sip_port, "baresip v1.0.0")
    assert answer is not None and answer.startswith(b"SIP/2.0 200")


def test_flood_from_one_source_does_not_stop_others(pbx_factory: PbxFactory,
                                                    tmp_path: Path) -> None:  # fmt: skip
    require_binary("sipp")
    require_binary("baresip")
    pbx = pbx_factory(toml=SECURITY)
    a = Baresip(tmp_path / "a", "8005", "8005", pbx.sip_port)
    b = Baresip(tmp_path / "b", "8006", "8006", pbx.sip_port)
    flood = subprocess.Popen(
        ["sipp", "-nostdin", "-sn", "uac", "-i", "127.0.0.2", "-p", str(free_sip_port()),
         "-r", "3000", "-rp", "1000", "-m", "30000", "-l", "30000", "-timeout", "20s",
         "-s", "8006", f"127.0.0.1:{pbx.sip_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        time.sleep(1.5)
        with a, b:
            a.wait_registered(timeout=15)
            b.wait_registered(timeout=15)
            a.dial(f"sip:8006@127.0.0.1:{pbx.sip_port}")
            wait_event(b, "CALL_ESTABLISHED", timeout=15)
            wait_event(a, "CALL_ESTABLISHED", timeout=15)
            a.hangup()
            wait_event(b, "CALL_CLOSED")
    finally:
        flood.kill()
        flood.wait(timeout=10)
    log = pbx.stderr_text()
    assert "pike: 127.0.0.2 floods" in log
    assert "pike: 127.0.0.1" not in log


LIMITS = "[security]\ntcp_max_per_ip = 3\ntcp_partial_timeout = 1.0\nmax_transactions = 100000\n"


def _closed(conn: socket.socket, timeout: float) -> bool:
    conn.settimeout(timeout)
    try:
        return conn.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_slowloris_and_connection_limits(pbx_factory: PbxFactory) -> None:
    pbx = pbx_factory(toml=LIMITS)
    # A message that never completes is cut after the partial-message timeout.
    slow = socket.create_connection(("127.0.0.1", pbx.sip_port), timeout=2)
    slow.sendall(b"OPTIONS sip:s@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9\r\n")
    assert _closed(slow, 6.0), "slowloris connection not closed"
    slow.close()
    # At most 3 connections from one address.
    kept = [socket.create_connection(("127.0.0.1", pbx.sip_port), timeout=2) for _ in range(3)]
    extra = socket.create_connection(("127.0.0.1", pbx.sip_port), timeout=2)
    assert _closed(extra, 3.0), "connection beyond tcp_max_per_ip accepted"
    assert not _closed(kept[0], 0.5)
    for conn in [*kept, extra]:
        conn.close()
    assert "limit stream_connections_per_ip hit" in pbx.stderr_text()
    assert "limit stream_partial_timeout hit" in pbx.stderr_text()


def test_too_many_header_lines_gets_400(pbx_factory: PbxFactory) -> None:
    pbx = pbx_factory()
    branch = "z9hG4bK" + os.urandom(6).hex()
    lines = [
        f"OPTIONS sip:s@127.0.0.1:{pbx.sip_port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch={branch};rport",
        "From: <sip:x@127.0.0.1>;tag=1", "To: <sip:s@127.0.0.1>", f"Call-ID: {branch}",
        "CSeq: 1 OPTIONS", "Max-Forwards: 70",
        *[f"X-Junk-{n}: {n}" for n in range(400)],
        "Content-Length: 0",
    ]  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), ("127.0.0.1", pbx.sip_port))
        answer = sock.recvfrom(4096)[0]
    assert answer.startswith(b"SIP/2.0 400")

"""``callway stun`` against Debian's ``stun`` client (Vovida 0.97) and raw sockets.

The RFC 5780 server listens on 127.0.0.1 and 127.0.0.2 (both on Linux's
loopback) with two ports each.  Debian's client speaks RFC 3489 (no magic
cookie); its exit status is a bitmask (PEERS.md, its client.cxx): 0x00 open
internet, 0x01 added when the port is preserved, 0x0C blocked, 0x10 hairpin.
On loopback there is no NAT, so it must say "Open" and exit 1.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from callway.stun.message import (
    Attribute,
    AttrType,
    ChangeRequest,
    MessageClass,
    Method,
    StunMessage,
    decode,
    encode,
    new_transaction_id,
)
from tests.helpers.peers import require_binary
from tests.helpers.ports import free_port_pair_block

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

IP1, IP2 = "127.0.0.1", "127.0.0.2"
Server = tuple[int, int]


def callway_stun_argv() -> list[str]:
    """``python -m callway stun``."""
    return [sys.executable, "-m", "callway", "stun"]


def _udp_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((ip, port))
        except OSError:
            return False
        return True


def free_stun_ports() -> Server:
    """Two UDP ports free on both loopback IPs."""
    for _ in range(500):
        p1, p2 = random.sample(range(20000, 32000), 2)
        if all(_udp_free(ip, p) for ip in (IP1, IP2) for p in (p1, p2)):
            return p1, p2
    raise RuntimeError("no free UDP ports on 127.0.0.1 and 127.0.0.2")


def binding(
    sock: socket.socket, server: tuple[str, int], *attrs: Attribute
) -> tuple[StunMessage, tuple[str, int]]:
    """Send a Binding request from ``sock``; return the response and where it came from."""
    request = StunMessage(Method.BINDING, MessageClass.REQUEST, new_transaction_id(), attrs)
    data = encode(request)
    sock.settimeout(0.5)
    for _ in range(6):
        sock.sendto(data, server)
        try:
            reply, origin = sock.recvfrom(2048)
        except TimeoutError:
            continue
        msg = decode(reply)
        assert msg.transaction_id == request.transaction_id
        return msg, (origin[0], origin[1])
    raise AssertionError(f"no STUN answer from {server}")


@contextlib.contextmanager
def run_stun_server(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [*callway_stun_argv(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


def wait_ready(proc: subprocess.Popen[bytes], address: tuple[str, int]) -> None:
    deadline = time.monotonic() + 10
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((IP1, 0))
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"callway stun exited {proc.returncode}: {err}")
            with contextlib.suppress(AssertionError):
                binding(sock, address)
                return
    raise AssertionError("callway stun did not answer within 10 s")


@pytest.fixture
def rfc5780_server() -> Iterator[Server]:
    """``callway stun --listen 127.0.0.1:P1 --alternate 127.0.0.2:P2``."""
    p1, p2 = free_stun_ports()
    with run_stun_server("--listen", f"{IP1}:{p1}", "--alternate", f"{IP2}:{p2}") as proc:
        wait_ready(proc, (IP1, p1))
        yield p1, p2


def test_debian_stun_client_sees_open_internet(rfc5780_server: Server) -> None:
    stun = require_binary("stun")
    p1, _ = rfc5780_server
    local = free_port_pair_block(2, tcp=False)  # the client binds LOCAL and LOCAL+1
    done = subprocess.run(
        [stun, f"{IP1}:{p1}", "-v", "-p", str(local)],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert f"MappedAddress = {IP1}:{local}" in out, out
    assert f"ChangedAddress = {IP2}:" in out, out
    assert "Primary: Open" in out, out
    assert done.returncode == 0x01, out  # open internet, port preserved


def test_xor_mapped_address_is_the_client_socket(rfc5780_server: Server) -> None:
    p1, p2 = rfc5780_server
    for client_ip in (IP1, IP2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((client_ip, 0))
            mine = sock.getsockname()
            for server in [(ip, p) for ip in (IP1, IP2) for p in (p1, p2)]:
                msg, origin = binding(sock, server)
                assert msg.cls == MessageClass.SUCCESS
                assert msg.address(AttrType.XOR_MAPPED_ADDRESS) == mine
                assert msg.address(AttrType.MAPPED_ADDRESS) == mine
                assert origin == server
                assert msg.address(AttrType.RESPONSE_ORIGIN) == server
                other = (IP2 if server[0] == IP1 else IP1, p2 if server[1] == p1 else p1)
                assert msg.address(AttrType.OTHER_ADDRESS) == other


@pytest.mark.parametrize(
    ("change_ip", "change_port"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_change_request_answers_from_the_other_socket(
    rfc5780_server: Server, change_ip: bool, change_port: bool
) -> None:
    p1, p2 = rfc5780_server
    expected = (IP2 if change_ip else IP1, p2 if change_port else p1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((IP1, 0))
        flags = Attribute(AttrType.CHANGE_REQUEST, ChangeRequest(change_ip, change_port))
        msg, origin = binding(sock, (IP1, p1), flags)
        assert origin == expected
        assert msg.address(AttrType.RESPONSE_ORIGIN) == expected
        assert msg.address(AttrType.XOR_MAPPED_ADDRESS) == sock.getsockname()


def test_single_address_server() -> None:
    """``--listen`` alone: a plain RFC 8489 server; CHANGE-REQUEST cannot be honoured."""
    p1, _ = free_stun_ports()
    with run_stun_server("--listen", f"{IP1}:{p1}") as proc:
        wait_ready(proc, (IP1, p1))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((IP1, 0))
            msg, origin = binding(sock, (IP1, p1))
            assert origin == (IP1, p1)
            assert msg.address(AttrType.XOR_MAPPED_ADDRESS) == sock.getsockname()
            assert msg.get(AttrType.OTHER_ADDRESS) is None
            flags = Attribute(AttrType.CHANGE_REQUEST, ChangeRequest(True, True))
            refused, _ = binding(sock, (IP1, p1), flags)
            assert refused.error_code is not None and refused.error_code.code == 420

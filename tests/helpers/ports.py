"""Free loopback ports for tests that start real processes.

A port found here is free at the moment of the check only: another process may
take it before the test binds it.  Blocks are picked at random below the
kernel's ephemeral range so that concurrent test runs rarely collide.
"""

from __future__ import annotations

import random
import socket

LOOPBACK = "127.0.0.1"

# Linux's default ephemeral range is 32768-60999; blocks are taken below it so
# that short-lived client sockets do not land in them.
_BLOCK_LOW = 20000
_BLOCK_HIGH = 32000
_ATTEMPTS = 500


def _can_bind(port: int, kind: socket.SocketKind, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_is_free(port: int, *, udp: bool = True, tcp: bool = True) -> bool:
    """True if ``port`` can be bound on loopback for the requested protocols."""
    if udp and not _can_bind(port, socket.SOCK_DGRAM):
        return False
    return not (tcp and not _can_bind(port, socket.SOCK_STREAM))


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that is free right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def free_sip_port() -> int:
    """A port free for both UDP and TCP on loopback (SIP listens on both)."""
    for _ in range(_ATTEMPTS):
        port = free_udp_port()
        if port_is_free(port, udp=False, tcp=True):
            return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


def free_port_pair_block(n: int = 2, *, udp: bool = True, tcp: bool = True) -> int:
    """The first of ``n`` consecutive ports, each free for UDP and TCP.

    baresip's ``sip_listen 127.0.0.1:P`` also binds ``P+1`` (TLS), so it needs a
    block of two.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    for _ in range(_ATTEMPTS):
        start = random.randrange(_BLOCK_LOW, _BLOCK_HIGH - n)
        if all(port_is_free(start + i, udp=udp, tcp=tcp) for i in range(n)):
            return start
    raise RuntimeError(f"no block of {n} free ports on 127.0.0.1")


def free_rtp_range(n: int = 10) -> tuple[int, int]:
    """An even-started range ``(first, last)`` of ``n`` free UDP ports (inclusive).

    ``n`` is rounded up to an even count so that RTP/RTCP pairs fit; the result
    is suitable for baresip's ``rtp_ports first-last``.
    """
    n = max(2, n + (n % 2))
    for _ in range(_ATTEMPTS):
        start = random.randrange(_BLOCK_LOW, _BLOCK_HIGH - n) & ~1
        if all(port_is_free(start + i, udp=True, tcp=False) for i in range(n)):
            return start, start + n - 1
    raise RuntimeError(f"no even range of {n} free UDP ports on 127.0.0.1")

"""A pool of RTP/RTCP socket pairs from a configured port range.

Like Asterisk's ``rtp.conf`` (``rtpstart``/``rtpend``, inclusive), RTP takes
an even port and RTCP the next odd one (RFC 3550 §11).  The pool binds both
sockets itself, so a port another process holds is skipped, not assumed
free.  A cursor walks the range round-robin: a port just released is the last
one reused, so late packets of an ended call do not land in a new one.

Sockets are bound without ``SO_REUSEADDR``: on Linux that option would let
two UDP sockets share a port and split its traffic.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field

__all__ = ["DEFAULT_RTP_END", "DEFAULT_RTP_START", "PortPair", "PortPool", "PortsExhaustedError"]

DEFAULT_RTP_START = 10000
DEFAULT_RTP_END = 20000
_UNAVAILABLE = frozenset({errno.EADDRINUSE, errno.EACCES})


class PortsExhaustedError(RuntimeError):
    """No even/odd port pair of the range could be bound."""


@dataclass(eq=False, slots=True)
class PortPair:
    """Bound, non-blocking RTP (even port) and RTCP (port + 1) sockets."""

    host: str
    rtp_port: int
    rtp: socket.socket
    rtcp: socket.socket
    pool: PortPool | None = field(default=None, repr=False)

    @property
    def rtcp_port(self) -> int:
        """The RTCP port: RTP port + 1 (RFC 3550 §11)."""
        return self.rtp_port + 1

    @property
    def closed(self) -> bool:
        """True once the sockets are closed and the ports back in the pool."""
        return self.rtp.fileno() < 0

    def close(self) -> None:
        """Close both sockets and return the pair to its pool (idempotent)."""
        self.rtp.close()
        self.rtcp.close()
        if self.pool is not None:
            self.pool.forget(self)
            self.pool = None


class PortPool:
    """Allocates RTP/RTCP pairs from ``rtp_start``-``rtp_end`` (inclusive) on ``host``."""

    def __init__(
        self,
        host: str = "0.0.0.0",
        rtp_start: int = DEFAULT_RTP_START,
        rtp_end: int = DEFAULT_RTP_END,
    ) -> None:
        start = rtp_start + (rtp_start & 1)  # RTP ports are even
        if not 0 < start < rtp_end <= 65535:
            raise ValueError(f"RTP port range {rtp_start}-{rtp_end} holds no even/odd pair")
        self.host = host
        self.start = start
        self.end = rtp_end
        self._cursor = start
        self._in_use: set[tuple[str, int]] = set()

    @property
    def capacity(self) -> int:
        """How many pairs the range holds."""
        return (self.end - self.start + 1) // 2

    @property
    def in_use(self) -> int:
        """How many pairs are allocated and not yet closed."""
        return len(self._in_use)

    def allocate(self, host: str | None = None) -> PortPair:
        """Bind the next free pair on ``host`` (default: the pool's host)."""
        host = host or self.host
        for _ in range(self.capacity):
            port = self._cursor
            self._cursor = port + 2 if port + 3 <= self.end else self.start
            if (host, port) in self._in_use:
                continue
            pair = self._bind(host, port)
            if pair is not None:
                self._in_use.add((host, port))
                return pair
        raise PortsExhaustedError(f"no free RTP port pair in {self.start}-{self.end} on {host}")

    def forget(self, pair: PortPair) -> None:
        """Mark ``pair`` free again; :meth:`PortPair.close` calls this."""
        self._in_use.discard((pair.host, pair.rtp_port))

    def release(self, pair: PortPair) -> None:
        """Close ``pair`` and return it to the pool (idempotent)."""
        pair.close()

    def _bind(self, host: str, port: int) -> PortPair | None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, port))
            rtcp.bind((host, port + 1))
        except OSError as exc:
            rtp.close()
            rtcp.close()
            if exc.errno in _UNAVAILABLE:
                return None
            raise
        rtp.setblocking(False)
        rtcp.setblocking(False)
        return PortPair(host, port, rtp, rtcp, self)

"""A pool of RTP/RTCP socket pairs from a configured port range.

Like Asterisk's ``rtp.conf`` (``rtpstart``/``rtpend``, inclusive), RTP takes
an even port and RTCP the next odd one (RFC 3550 §11).  The pool binds both
sockets itself, so a port another process holds is skipped, not assumed
free.  A cursor walks the range round-robin: a port just released is the last
one reused, so late packets of an ended call do not land in a new one.

Sockets are bound without ``SO_REUSEADDR``: on Linux that option would let
two UDP sockets share a port and split its traffic.

A closed pair is not unbound at once: up to ``keep_idle`` pairs stay bound,
idle, in first-released-first-reused order, and a pair idle for at least
``quarantine`` seconds is handed out again before the cursor binds a new
one (a call then costs no socket creation, bind or close).  Whatever
arrived on an idle pair (late packets of its last call) is drained before
it is reused, and the quarantine keeps a just-ended call's stragglers from
being latched by the next one (RFC 4961 symmetric RTP latches the first
source heard).  A relay that closes its pair on a running event loop *parks*
it there (:meth:`PortPair.close` with ``park_on``): its sockets keep a reader
that discards what arrives, so the next call on that loop only swaps the
reader's callback, and nothing needs draining on reuse (an event loop's
reader removed and added per call, with a drain, cost more than the rest of
the relay's set-up).  When the cursor reaches a port held idle, it reuses that
pair whatever its age, as round robin would.  Idle pairs are not counted in
:attr:`PortPool.in_use`; :meth:`PortPool.close_idle` unbinds them.

Under a steady load pairs come back to use within seconds; a pair idle for
``idle_timeout`` seconds is surplus from a burst that is over, and
:meth:`PortPool.expire_idle` (a periodic call of the shell) unbinds it, so
the descriptors and the memory of a burst's pairs are given back.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from callway.transport.tos import set_tos

__all__ = ["DEFAULT_RTP_END", "DEFAULT_RTP_START", "PortPair", "PortPool", "PortsExhaustedError"]

DEFAULT_RTP_START = 10000
DEFAULT_RTP_END = 20000
DEFAULT_QUARANTINE = 2.0  # seconds a released pair stays idle before it is reused
DEFAULT_IDLE_TIMEOUT = 5.0  # seconds an idle pair stays bound unused before expire_idle unbinds it
_MAX_KEEP_IDLE = 2048  # pairs kept bound while idle, at most (4096 descriptors)
_DRAIN_LIMIT = 256  # stale datagrams discarded per socket when a pair is reused
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
    released: bool = field(default=False, repr=False)
    #: The loop on which both sockets have a reader that discards what arrives (a
    #: parked pair, see :meth:`close`); whoever uses the pair on that loop replaces it.
    parked: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    #: The ToS byte (DSCP << 2) both sockets mark their packets with.
    tos: int = field(default=0, repr=False)

    def mark(self, tos: int) -> None:
        """Mark RTP and RTCP with ``tos`` (``tos_audio``, e.g. EF = 0xb8; RFC 2474).

        A pair is reused call after call: it only changes when it must.
        """
        if tos == self.tos:
            return
        set_tos(self.rtp, tos)
        set_tos(self.rtcp, tos)
        self.tos = tos

    @property
    def rtcp_port(self) -> int:
        """The RTCP port: RTP port + 1 (RFC 3550 §11)."""
        return self.rtp_port + 1

    @property
    def closed(self) -> bool:
        """True once the pair is given back (its sockets closed or kept idle by the pool)."""
        return self.released

    def close(self, park_on: asyncio.AbstractEventLoop | None = None) -> None:
        """Return the pair to its pool, which closes or keeps its sockets (idempotent).

        ``park_on``: the running loop on which the caller's readers are still set
        for both sockets.  If the pool keeps the pair they are replaced by
        readers that discard (the pair is parked); otherwise they are removed
        before the sockets close.
        """
        if self.released:
            return
        self.released = True
        pool, self.pool = self.pool, None
        usable = park_on is not None and not park_on.is_closed()
        if pool is not None and pool.keep(self):
            if usable:
                assert park_on is not None
                self.parked = park_on
                _park(park_on, self.rtp, self.rtcp)
            return
        if usable:
            assert park_on is not None
            park_on.remove_reader(self.rtp.fileno())
            park_on.remove_reader(self.rtcp.fileno())
        self.unbind()

    def unbind(self) -> None:
        """Close both sockets, a parked pair's discarding readers removed first."""
        self.unpark()
        self.rtp.close()
        self.rtcp.close()

    def unpark(self) -> None:
        """Remove the discarding readers of a parked pair (before its sockets close)."""
        loop, self.parked = self.parked, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.rtp.fileno())
            loop.remove_reader(self.rtcp.fileno())


class PortPool:
    """Allocates RTP/RTCP pairs from ``rtp_start``-``rtp_end`` (inclusive) on ``host``."""

    def __init__(
        self,
        host: str = "0.0.0.0",
        rtp_start: int = DEFAULT_RTP_START,
        rtp_end: int = DEFAULT_RTP_END,
        *,
        keep_idle: int | None = None,
        quarantine: float = DEFAULT_QUARANTINE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        start = rtp_start + (rtp_start & 1)  # RTP ports are even
        if not 0 < start < rtp_end <= 65535:
            raise ValueError(f"RTP port range {rtp_start}-{rtp_end} holds no even/odd pair")
        self.host = host
        self.start = start
        self.end = rtp_end
        #: Pairs kept bound while idle (0: unbind each pair when it is closed).
        self.keep_idle = _default_keep_idle() if keep_idle is None else keep_idle
        self.quarantine = quarantine
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._cursor = start
        self._in_use: set[tuple[str, int]] = set()
        # Idle pairs by (host, port), oldest release first: (released at, the pair).
        self._idle: dict[tuple[str, int], tuple[float, PortPair]] = {}

    @property
    def capacity(self) -> int:
        """How many pairs the range holds."""
        return (self.end - self.start + 1) // 2

    @property
    def in_use(self) -> int:
        """How many pairs are allocated and not yet closed."""
        return len(self._in_use)

    @property
    def idle(self) -> int:
        """How many closed pairs are kept bound for reuse."""
        return len(self._idle)

    def allocate(self, host: str | None = None) -> PortPair:
        """The oldest idle pair past its quarantine, else the next free pair of the range."""
        host = host or self.host
        idle = self._idle
        if idle:
            key = next(iter(idle))
            released, old = idle[key]
            if key[0] == host and self._clock() - released >= self.quarantine:
                del idle[key]
                return self._reuse(old)
        for _ in range(self.capacity):
            port = self._cursor
            self._cursor = port + 2 if port + 3 <= self.end else self.start
            key = (host, port)
            if key in self._in_use:
                continue
            entry = idle.pop(key, None)
            if entry is not None:  # round robin came back to an idle pair: reuse it
                return self._reuse(entry[1])
            pair = self._bind(host, port)
            if pair is not None:
                self._in_use.add(key)
                return pair
        raise PortsExhaustedError(f"no free RTP port pair in {self.start}-{self.end} on {host}")

    def keep(self, pair: PortPair) -> bool:
        """Take back a closed pair: True if its sockets stay bound, idle, for reuse.

        :meth:`PortPair.close` calls this; on False it closes the sockets.
        """
        key = (pair.host, pair.rtp_port)
        self._in_use.discard(key)
        if len(self._idle) >= self.keep_idle or pair.rtp.fileno() < 0:
            return False
        self._idle[key] = (self._clock(), pair)
        return True

    def forget(self, pair: PortPair) -> None:
        """Mark ``pair`` free again without keeping its sockets."""
        self._in_use.discard((pair.host, pair.rtp_port))

    def release(self, pair: PortPair) -> None:
        """Close ``pair`` and return it to the pool (idempotent)."""
        pair.close()

    def close_idle(self) -> None:
        """Unbind every idle pair (e.g. on shutdown)."""
        idle, self._idle = self._idle, {}
        for _, pair in idle.values():
            pair.unbind()

    def expire_idle(self) -> int:
        """Unbind the pairs idle for ``idle_timeout`` seconds or more; how many."""
        idle = self._idle
        if not idle:
            return 0
        limit = self._clock() - self.idle_timeout
        stale = []
        for key, (released, _) in idle.items():  # oldest release first
            if released > limit:
                break
            stale.append(key)
        for key in stale:
            _, pair = idle.pop(key)
            pair.unbind()
        if not idle:  # a dict keeps its largest table: start small again
            self._idle = {}
        return len(stale)

    def _reuse(self, old: PortPair) -> PortPair:
        """An idle pair handed out again, emptied of what arrived while it was idle.

        A parked pair's readers already discarded that; it stays parked for
        its next user to take over on the same loop.
        """
        if old.parked is None:
            _drain(old.rtp)
            _drain(old.rtcp)
        self._in_use.add((old.host, old.rtp_port))
        return PortPair(old.host, old.rtp_port, old.rtp, old.rtcp, self, parked=old.parked)

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


def _park(loop: asyncio.AbstractEventLoop, rtp: socket.socket, rtcp: socket.socket) -> None:
    """Readers on both sockets that discard what arrives (an idle pair's stragglers)."""
    loop.add_reader(rtp.fileno(), _drain, rtp)
    loop.add_reader(rtcp.fileno(), _drain, rtcp)


def _drain(sock: socket.socket) -> None:
    """Discard the datagrams queued on an idle socket (stragglers of its last call)."""
    for _ in range(_DRAIN_LIMIT):
        try:
            sock.recv(1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # e.g. a queued ICMP error: read on
            continue


def _default_keep_idle() -> int:
    """Idle pairs to keep: a quarter of the descriptor limit in sockets, at most 2048 pairs."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 0
    if soft == resource.RLIM_INFINITY:
        return _MAX_KEEP_IDLE
    return max(0, min(_MAX_KEEP_IDLE, soft // 8))

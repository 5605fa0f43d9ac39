"""UDP transport: a non-blocking socket read in batches from the event loop.

Replies must leave from the address the request arrived on (RFC 3261
§18.2.2; a socket bound to 0.0.0.0 would answer from the node's primary
address and clients drop that).  For a wildcard bind we ask the kernel for
the destination address of each datagram (``IP_PKTINFO``) and set it as the
source of the reply; a socket bound to one address needs nothing.
``IP_FREEBIND`` lets a node bind a virtual IP it does not hold yet.

``reuse_port`` binds with ``SO_REUSEPORT`` so that several processes share
one port (the balancer's ``--workers``).  ``greedy`` reads every waiting
datagram (up to :data:`BATCH`) per wakeup instead of one unless the queue is
behind: for servers that get their datagrams in bursts (a proxy: a request
and the answers it causes; a registrar under a REGISTER storm), where each
extra event-loop turn costs more than the one failing read that ends a drain.

:attr:`UdpEndpoint.lag` is how long the oldest datagram of the last batch
waited in the kernel's queue (from the kernel's receive timestamp,
``SO_TIMESTAMPNS``): the input side of the event loop's lag, which a server
uses to shed load before it falls behind for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable

from callway.core.address import Address

log = logging.getLogger("callway.transport.udp")

_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_IP_FREEBIND = 15
_PKTINFO = struct.Struct("=I4s4s")  # ifindex, spec_dst, addr (struct in_pktinfo)
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("=qq")
_ANCILLARY = 128
BATCH = 64  # datagrams read per wakeup at most
_MAX_DATAGRAM = 65535
_SOURCES_MAX = 4096  # memoised source addresses (cleared when full)
_BACKLOG = 0.001  # seconds a datagram waited before we drain more than one per wakeup

Receiver = Callable[[bytes, Address], None]


def queue_wait(timespec: bytes) -> float:
    """Seconds a datagram waited in the kernel's queue, from its ``SO_TIMESTAMPNS`` payload."""
    seconds, nanos = _TIMESPEC.unpack_from(timespec)
    waited: float = time.time() - seconds - nanos * 1e-9
    return max(0.0, waited)


class UdpEndpoint:
    """One bound UDP socket feeding datagrams to ``receiver``."""

    def __init__(
        self,
        host: str,
        port: int,
        receiver: Receiver,
        *,
        transport: str = "udp",
        reuse_port: bool = False,
        greedy: bool = False,
    ) -> None:
        self.host = host
        #: Drain the kernel queue on every wakeup (see the module's docstring).
        self.greedy = greedy
        self.receiver = receiver
        self.transport = transport
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET:
            with contextlib.suppress(OSError):  # not Linux
                self.sock.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.wildcard = host in ("0.0.0.0", "::")
        if self.wildcard and family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        #: Seconds the oldest datagram of the last batch spent in the kernel's queue.
        self.lag = 0.0
        self._local = (host, self.port)
        self._buffer = bytearray(_MAX_DATAGRAM)
        self._view = memoryview(self._buffer)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Source addresses by (peer, local host): a phone sends from one address,
        # so its datagrams share one immutable Address instead of building one each.
        self._sources: dict[tuple[tuple[str, int], str], Address] = {}

    @property
    def local(self) -> tuple[str, int]:
        """The bound (host, port)."""
        return self._local

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading."""
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._on_readable)

    def close(self) -> None:
        """Stop reading and close the socket."""
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()

    def _on_readable(self) -> None:
        # The first datagram comes with its kernel timestamp (the lag).  Unless greedy:
        # when it waited less than a millisecond there is no backlog, and trying another
        # read would only cost a failing syscall per packet; with a backlog, drain up to
        # a batch.  A wildcard socket reads each datagram with its destination address.
        greedy = self.greedy
        for count in range(BATCH):
            try:
                if self.wildcard or count == 0:
                    data, source = self._recv_pktinfo(count == 0)
                else:
                    size, peer = self.sock.recvfrom_into(self._buffer)
                    data = bytes(self._view[:size])
                    source = self._source(peer, self.host)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP errors surface here on Linux
                log.debug("udp receive error on %s:%s: %s", self.host, self.port, exc)
                continue
            try:
                self.receiver(data, source)
            except Exception:  # the server keeps serving whatever one packet does
                log.exception("error handling a datagram from %s", source)
            if count == 0 and not greedy and self.lag < _BACKLOG:
                return

    def _recv_pktinfo(self, first: bool) -> tuple[bytes, Address]:
        """One datagram with its ancillary data: destination address, kernel timestamp.

        Only the ``first`` datagram of a wakeup sets :attr:`lag`: it waited longest.
        """
        data, ancdata, _flags, peer = self.sock.recvmsg(_MAX_DATAGRAM, _ANCILLARY)
        local_host = self.host
        for level, kind, payload in ancdata:
            if level == socket.IPPROTO_IP and kind == _IP_PKTINFO:
                _ifindex, spec_dst, _addr = _PKTINFO.unpack_from(payload)
                local_host = socket.inet_ntoa(spec_dst)
            elif first and level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                self.lag = queue_wait(payload)
        return data, self._source(peer, local_host)

    def _source(self, peer: tuple[str, int], local_host: str) -> Address:
        key = (peer, local_host)
        source = self._sources.get(key)
        if source is None:
            if len(self._sources) >= _SOURCES_MAX:
                self._sources.clear()
            source = Address(self.transport, peer[0], peer[1], (local_host, self.port))
            self._sources[key] = source
        return source

    def send(self, data: bytes, dest: Address) -> None:
        """Send one datagram, from ``dest.local``'s address when we are a wildcard."""
        target = (dest.host, dest.port)
        try:
            if self.wildcard and dest.local is not None and dest.local[0] != self.host:
                info = _PKTINFO.pack(0, socket.inet_aton(dest.local[0]), b"\0" * 4)
                self.sock.sendmsg([data], [(socket.IPPROTO_IP, _IP_PKTINFO, info)], 0, target)
            else:
                self.sock.sendto(data, target)
        except BlockingIOError:
            log.warning("udp send buffer full, dropped %d bytes to %s", len(data), dest)
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                log.warning("udp send to %s failed: %s", dest, exc)

"""TCP transport: stream connections framed by Content-Length (RFC 3261 §18.3).

Every connection gets an id that travels in :class:`Address.conn`, so a
response (and a later request to a phone registered over TCP) goes down the
very connection the request came on (RFC 3261 §18.2.2, RFC 5626 §5.3).
CRLFCRLF keep-alive pings are answered with CRLF (RFC 5626 §3.5.1).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from callway.core.address import Address
from callway.sip.framing import FramedMessage, FramingError, KeepAlivePing, StreamFramer
from callway.transport.tos import set_tos

log = logging.getLogger("callway.transport.tcp")

Receiver = Callable[[bytes, Address], None]
ErrorReplier = Callable[[bytes, int, Address], None]

_ids = itertools.count(1)
IDLE_TIMEOUT = 600.0
SWEEP = 2.0


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What one listener accepts (RFC 5626 §4.4 keeps flows alive; attackers do not)."""

    max_per_ip: int = 100
    max_total: int = 10_000
    partial_timeout: float = 30.0  # a message still incomplete after this: slowloris
    idle_timeout: float = 0.0  # close connections silent this long (0: never)


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server
        self.id = next(_ids)
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Address | None = None
        self.pending: list[bytes] = []
        self.last_activity = time.monotonic()
        self.partial_since: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if not self.server.admit(peer[0]):
            self.transport.abort()
            return
        sockname = transport.get_extra_info("sockname")
        self.peer = Address(
            self.server.transport_name, peer[0], peer[1], (sockname[0], sockname[1]), self.id
        )
        self.server.connections[self.id] = self
        self.server.by_peer[(peer[0], peer[1])] = self
        for data in self.pending:
            self.transport.write(data)
        self.pending.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        self.framer.receive_data(data)
        while (event := self.framer.next_event()) is not None:
            if isinstance(event, FramedMessage):
                assert self.peer is not None
                try:
                    self.server.receiver(event.data, self.peer)
                except Exception:
                    log.exception("error handling a message from %s", self.peer)
            elif isinstance(event, KeepAlivePing):
                self.write(b"\r\n")
            elif isinstance(event, FramingError):
                log.info("closing %s: %s", self.peer, event.reason)
                self.server.count("stream_framing_error")
                self.close()
                return
        if self.framer.buffered:
            if self.partial_since is None:
                self.partial_since = self.last_activity
        else:
            self.partial_since = None

    def write(self, data: bytes) -> None:
        """Send bytes (queued until connected)."""
        if self.transport is None:
            self.pending.append(data)
        elif not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()


class StreamServer:
    """A listening TCP (or TLS) socket and the connections it owns."""

    def __init__(
        self,
        host: str,
        port: int,
        receiver: Receiver,
        *,
        transport_name: str = "tcp",
        ssl_context: ssl.SSLContext | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
        limits: StreamLimits | None = None,
    ) -> None:
        self.limits = limits or StreamLimits()
        #: How often each limit refused or closed something (for logs and metrics).
        self.limit_hits: Counter[str] = Counter()
        self._sweeper: asyncio.Task[None] | None = None
        self.host = host
        self.port = port
        self.receiver = receiver
        self.transport_name = transport_name
        self.ssl_context = ssl_context
        self.client_ssl_context = client_ssl_context
        self.connections: dict[int, StreamConnection] = {}
        self.by_peer: dict[tuple[str, int], StreamConnection] = {}
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind and listen."""
        self._loop = loop
        self._server = await loop.create_server(
            lambda: StreamConnection(self),
            self.host,
            self.port,
            ssl=self.ssl_context,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = loop.create_task(self._sweep())

    def mark(self, tos: int) -> None:
        """Mark SIP over this listener with ``tos`` (accepted connections inherit it)."""
        if self._server is not None:
            for sock in self._server.sockets:
                set_tos(sock, tos)

    def count(self, limit: str) -> None:
        """Record one hit of ``limit``; log the first and every 100th."""
        self.limit_hits[limit] += 1
        hits = self.limit_hits[limit]
        if hits == 1 or hits % 100 == 0:
            log.warning("%s limit %s hit (%d times)", self.transport_name, limit, hits)

    def admit(self, host: str) -> bool:
        """Accept one more connection from ``host``?"""
        limits = self.limits
        if len(self.connections) >= limits.max_total:
            self.count("stream_connections_total")
            return False
        if limits.max_per_ip and sum(
            1 for c in self.connections.values() if c.peer is not None and c.peer.host == host
        ) >= limits.max_per_ip:
            self.count("stream_connections_per_ip")
            return False
        return True

    async def _sweep(self) -> None:
        """Close slowloris connections (partial messages) and idle ones."""
        while True:
            await asyncio.sleep(SWEEP)
            now = time.monotonic()
            limits = self.limits
            for conn in list(self.connections.values()):
                partial = conn.partial_since
                if partial is not None and now - partial > limits.partial_timeout:
                    self.count("stream_partial_timeout")
                    conn.close()
                elif limits.idle_timeout and now - conn.last_activity > limits.idle_timeout:
                    self.count("stream_idle_timeout")
                    conn.close()

    def forget(self, conn: StreamConnection) -> None:
        """Drop a closed connection from the tables."""
        self.connections.pop(conn.id, None)
        if conn.peer is not None and self.by_peer.get((conn.peer.host, conn.peer.port)) is conn:
            del self.by_peer[(conn.peer.host, conn.peer.port)]

    def send(self, data: bytes, dest: Address) -> None:
        """Send on ``dest.conn`` if open, else on a connection to (host, port), else connect."""
        conn = self.connections.get(dest.conn) if dest.conn is not None else None
        if conn is None:
            conn = self.by_peer.get((dest.host, dest.port))
        if conn is None:
            conn = self._connect(dest)
        conn.write(data)

    def _connect(self, dest: Address) -> StreamConnection:
        assert self._loop is not None
        conn = StreamConnection(self)
        self.by_peer[(dest.host, dest.port)] = conn
        loop = self._loop

        async def connect() -> None:
            try:
                await loop.create_connection(
                    lambda: conn, dest.host, dest.port, ssl=self.client_ssl_context
                )
            except OSError as exc:
                log.warning("cannot connect to %s: %s", dest, exc)
                self.forget(conn)
                if self.by_peer.get((dest.host, dest.port)) is conn:
                    del self.by_peer[(dest.host, dest.port)]

        loop.create_task(connect())
        return conn

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections.values()):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()

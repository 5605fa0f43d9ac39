"""The asyncio shell around the sans-I/O SIP core: sockets, clock and pump.

``SipStack`` owns the UDP endpoints and TCP servers, turns bytes into
messages, feeds them to the :class:`~callway.sip.transaction.TransactionLayer`,
hands the events to a :class:`TransactionUser` (the PBX, the balancer), sends
what the layer queued and re-arms one loop timer for the earliest deadline
(the aioquic pattern, STYLE-ANCHORS §3).

Bad input never stops it: a message that does not parse is answered with the
status its :class:`~callway.sip.errors.ParseError` suggests when a response can
be built (RFC 3261 §8.2, RFC 4475), and dropped otherwise.

Timers are batched: the loop timer is armed on a grid of :data:`TIMER_GRID`
seconds (rounded up), so the thousands of transaction timers a busy proxy
runs per second fire in a few dozen wake-ups instead of one each.  SIP's
timers (T1 = 500 ms) do not notice 20 ms.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from callway.core.address import Address
from callway.sip.errors import ParseError
from callway.sip.message import Request, Response, parse_message
from callway.sip.reply import error_response
from callway.sip.transaction import (
    TransactionConfig,
    TransactionError,
    TransactionEvent,
    TransactionLayer,
)
from callway.stun.server import binding_response
from callway.transport.guard import Guard
from callway.transport.tcp import StreamLimits, StreamServer
from callway.transport.udp import UdpEndpoint

log = logging.getLogger("callway.transport")
TIMER_GRID = 0.02  # seconds: transaction timers due within one slot fire together


class TransactionUser(Protocol):
    """What sits on top of the transaction layer (RFC 3261 §5: the TU)."""

    def handle_event(self, event: TransactionEvent, now: float) -> None:
        """React to one transaction event (may call back into the stack)."""


class FastPath(Protocol):
    """Answers one common kind of request straight from its bytes (the PBX's REGISTER)."""

    def handle(self, data: bytes, source: Address, now: float) -> bytes | None:
        """The response to send back to ``source``; b"" when handled with nothing to
        send (e.g. a retransmission, queued in the transaction layer); None: not
        handled, the message takes the ordinary path (parse, transaction, TU)."""


class SipStack:
    """Sockets + transaction layer + TU, driven by the asyncio loop."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        trace: Callable[[str, bytes, Address], None] | None = None,
        timers: TransactionConfig | None = None,
    ) -> None:
        self.clock = clock
        self.transactions = TransactionLayer(timers)
        self.tu: TransactionUser | None = None
        self.udp: list[UdpEndpoint] = []
        self.streams: list[StreamServer] = []
        self.trace = trace
        #: Flood/scanner filter applied before parsing (None: accept everything).
        self.guard: Guard | None = None
        #: Beyond this many live transactions new requests get 503 (0: no cap).
        self.max_transactions = 0
        self.closed = False
        self.stream_limits: StreamLimits | None = None
        #: Tried on each message before parsing (after the guard and the trace).
        self.fast_path: FastPath | None = None
        self.limit_hits: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pumping = False

    # -- setup ---------------------------------------------------------------

    def add_udp(self, host: str, port: int, *, reuse_port: bool = False) -> UdpEndpoint:
        """Bind a UDP endpoint (``reuse_port``: shared with other processes, SO_REUSEPORT)."""
        endpoint = UdpEndpoint(host, port, self.on_data, reuse_port=reuse_port)
        self.udp.append(endpoint)
        if self._loop is not None:
            endpoint.start(self._loop)
        return endpoint

    async def add_tcp(
        self,
        host: str,
        port: int,
        *,
        transport_name: str = "tcp",
        ssl_context: ssl.SSLContext | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
    ) -> StreamServer:
        """Listen on TCP (or TLS with ``ssl_context``)."""
        server = StreamServer(
            host,
            port,
            self.on_data,
            transport_name=transport_name,
            ssl_context=ssl_context,
            client_ssl_context=client_ssl_context,
            limits=self.stream_limits,
        )
        self.streams.append(server)
        await server.start(asyncio.get_running_loop())
        return server

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading from the UDP endpoints."""
        self._loop = loop
        for endpoint in self.udp:
            endpoint.start(loop)

    async def close(self) -> None:
        """Close every socket; nothing is sent or retransmitted afterwards."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for endpoint in self.udp:
            endpoint.close()
        for server in self.streams:
            await server.close()

    # -- receive ---------------------------------------------------------------

    def on_data(self, data: bytes, source: Address) -> None:
        """Bytes from a transport: one datagram or one framed stream message."""
        if data[:1] < b"\x04":
            # RFC 7983 demultiplexing: STUN keep-alives on the SIP port (RFC 5626 §4.4.2).
            reply = binding_response(data, (source.host, source.port))
            if reply is not None:
                self.send_bytes(reply, source)
                return
        if len(data) <= 4 and not data.strip(b"\r\n\0 "):
            return  # bare CRLF keep-alives are ignored
        if self.guard is not None and not self.guard.admit(data, source):
            return
        if self.trace is not None:
            self.trace("recv", data, source)
        now = self.clock()
        fast = self.fast_path
        limit = self.max_transactions
        if fast is not None and (not limit or self.transactions.active_transactions < limit):
            try:
                reply = fast.handle(data, source, now)
            except Exception:  # a bug there must not cost the message: the ordinary path
                log.exception("fast path failed on a message from %s", source)
                reply = None
            if reply is not None:
                if reply:
                    self.send_bytes(reply, source)
                    self._arm_timer()  # its Timer J
                else:
                    self.pump()  # a retransmission: the layer queued the response again
                return
        try:
            message = parse_message(data, stream=source.reliable)
            if isinstance(message, Request):
                if self._overloaded(message):
                    self._reject(data, ParseError("transaction limit reached", 503), source)
                    return
                _stamp_via(message, source)
                self.transactions.receive_request(message, source, now)
            else:
                self.transactions.receive_response(message, source, now)
        except ParseError as exc:
            self._reject(data, exc, source)
            return
        self.pump()

    def _at_limit(self) -> bool:
        limit = self.max_transactions
        return bool(limit) and self.transactions.active_transactions >= limit

    def _overloaded(self, request: Request) -> bool:
        """RFC 3261 §21.5.4: shed new work beyond the transaction cap."""
        if request.method in ("ACK", "CANCEL", "BYE") or not self._at_limit():
            return False
        self.limit_hits["transactions"] += 1
        if self.limit_hits["transactions"] % 1000 == 1:
            log.warning("transaction limit %d reached: answering 503", self.max_transactions)
        return True

    def _reject(self, data: bytes, exc: ParseError, source: Address) -> None:
        log.info("bad message from %s: %s", source, exc.reason)
        if exc.status_hint is None:
            return
        reply = error_response(data, exc.status_hint, exc.reason)
        if reply is not None:
            self.send_bytes(reply, source)

    # -- send --------------------------------------------------------------------

    def send_response(self, key: object, response: Response) -> None:
        """Send a response through its server transaction."""
        try:
            self.transactions.send_response(key, response, self.clock())  # type: ignore[arg-type]
        except TransactionError as exc:
            log.warning("cannot send %s: %s", response, exc)
        self.pump()

    def send_request(self, request: Request, dest: Address) -> object:
        """Start a client transaction."""
        key = self.transactions.send_request(request, dest, self.clock())
        self.pump()
        return key

    def send_stateless(self, message: Request | Response, dest: Address) -> None:
        """Send outside any transaction (ACK for a 2xx, 2xx retransmissions)."""
        self.send_bytes(message.to_bytes(), dest)

    def default_local(self, transport: str) -> tuple[str, int]:
        """The (host, port) of our first listener of ``transport``."""
        if transport == "udp" and self.udp:
            endpoint = self.udp[0]
            host = "127.0.0.1" if endpoint.wildcard else endpoint.host
            return host, endpoint.port
        for server in self.streams:
            if server.transport_name == transport:
                host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host
                return host, server.port
        return "127.0.0.1", 5060

    def send_bytes(self, data: bytes, dest: Address) -> None:
        """Put bytes on the wire towards ``dest`` through the right transport."""
        if self.closed:
            return
        if self.trace is not None:
            self.trace("send", data, dest)
        if dest.transport == "udp":
            udp = self.udp
            (udp[0] if len(udp) == 1 else self._udp_for(dest)).send(data, dest)
            return
        for server in self.streams:
            if server.transport_name == dest.transport:
                server.send(data, dest)
                return
        log.warning("no %s transport to reach %s", dest.transport, dest)

    def _udp_for(self, dest: Address) -> UdpEndpoint:
        if dest.local is not None and len(self.udp) > 1:
            for endpoint in self.udp:
                if endpoint.port == dest.local[1] and (
                    endpoint.wildcard or endpoint.host == dest.local[0]
                ):
                    return endpoint
        return self.udp[0]

    # -- pump ----------------------------------------------------------------------

    def pump(self) -> None:
        """Deliver events to the TU, send queued messages, re-arm the timer."""
        if self._pumping:
            return
        self._pumping = True
        layer = self.transactions
        try:
            while True:
                handled = False
                while (event := layer.next_event()) is not None:
                    handled = True
                    if self.tu is not None:
                        try:
                            self.tu.handle_event(event, self.clock())
                        except Exception:
                            log.exception("error handling %r", event)
                for message, dest in layer.messages_to_send():
                    self.send_bytes(message.to_bytes(), dest)
                if not handled:
                    break
        finally:
            self._pumping = False
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self.closed:
            return
        deadline = self.transactions.get_timer()
        if deadline is not None:
            deadline = math.ceil(deadline / TIMER_GRID) * TIMER_GRID
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            delay = max(0.0, deadline - self.clock())
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.closed:
            return
        self.transactions.handle_timer(self.clock())
        self.pump()


def _stamp_via(request: Request, source: Address) -> None:
    """Add ``received`` and fill ``rport`` on the top Via (RFC 3261 §18.2.1, RFC 3581 §4)."""
    try:
        via = request.via
    except ParseError:
        return
    needs_rport = "rport" in via.params and via.params["rport"] is None
    if via.host == source.host and not needs_rport:
        return
    via.params["received"] = source.host
    if needs_rport:
        via.params["rport"] = str(source.port)
    request.pop_first("via")
    request.prepend("via", str(via))

"""The balancer's fast path: a transaction-stateful UDP proxy on bytes (RFC 3261 §16, §17).

The full path (:mod:`callway.app.balancer_tu` over the transaction layer)
parses every message into objects, runs the generic transaction machines and
re-serialises; at a few thousand calls a second that is most of the
balancer's CPU.  This module relays the messages of an ordinary call by
editing their bytes (:mod:`callway.balancer.wire`) and keeps a small
transaction record of its own:

* an initial INVITE from a phone (no To tag, no Route): ``100 Trying`` back,
  Max-Forwards decremented, a Record-Route and our Via inserted, sent to the
  node the dispatcher picks; failover to the next candidate on 5xx/408
  before any provisional response or on the first-response timeout (§16.7
  step 6, Kamailio's ``ds_next_dst``), CANCEL (§16.10), retransmissions both
  ways (Timers A/B/D/E/F/G/H, §17);
* in-dialog requests whose top Route is ours (BYE, INFO, UPDATE, ...):
  Route popped (§16.4), relayed to the next Route or the Request-URI;
* ACK for a 2xx: the same, without a transaction (§16.11);
* responses: our Via cut off by slicing (§16.7 step 3) and sent to where the
  request came from (§18.2.2).

Anything else -- REGISTER (Path), requests from the nodes that start a
dialog, TCP, folded headers, our own OPTIONS, Path-routed requests, a
request that loops, an overloaded moment, no destination -- returns False
from :meth:`FastRelay.receive` and takes the full path, which is where the
error answers are built.  Both paths use the same dispatcher, counters and
branch prefix, so a node cannot tell which one relayed a message.

Sans-I/O: the shell passes each datagram with ``now`` and drives
:meth:`FastRelay.handle_timer`; datagrams leave through the ``send`` callback.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from callway.balancer import proxy
from callway.balancer.proxy import Identity
from callway.balancer.wire import (
    TopVia,
    Wire,
    first_route,
    has_to_tag,
    parse_top_via,
    response_address,
    route_uri,
    split_message,
    stamp_via,
)
from callway.core.address import Address
from callway.sip.errors import ParseError
from callway.sip.message import Request
from callway.sip.uri import SipURI, parse_uri

log = logging.getLogger("callway.balancer")

T1, T2 = 0.5, 4.0  # §17.1.1.1
TIMEOUT = 64 * T1  # Timers B, F, H; how long finished transactions are remembered
T4 = 5.0  # Timer K: how long a finished attempt's repeated answers are absorbed
TIMER_C = 180.0  # §16.6 step 11: a ringing attempt without a final answer is cancelled
ABANDONED = b"abandoned"  # memory of an attempt given up for silence: drop all it says
CACHE_SIZE = 4096  # Route entries and next-hop URIs remembered
IN_DIALOG = frozenset({"BYE", "INFO", "UPDATE", "PRACK", "NOTIFY", "MESSAGE", "OPTIONS"})
Send = Callable[[bytes, Address], None]


class Dispatcher(Protocol):
    """The dispatcher as the fast path sees it (the full path's picker)."""

    def candidates_for_call(
        self, call_id: str, request: Callable[[], Request], now: float
    ) -> list[tuple[str, Address]]:
        """Destinations for a new call, in order: (destination URI, address).

        ``request`` parses the INVITE, for the algorithms that hash a header.
        """

    def failed(self, uri: str, now: float) -> None:
        """A relayed request to ``uri`` timed out or got a 5xx."""

    def call_started(self, uri: str, call_id: str) -> None:
        """An INVITE to ``uri`` was answered."""

    def call_ended(self, call_id: str) -> None:
        """A BYE for the call went through."""

    def is_destination(self, source: Address) -> bool:
        """True if ``source`` is one of the nodes."""


@dataclass(slots=True, eq=False)
class Relay:
    """One relayed request: its upstream server transaction and the current attempt."""

    method: str
    key: tuple[str, str, str]  # upstream branch, sent-by, method
    upstream: Address
    call_id: str
    cseq: bytes  # the CSeq number
    request_line: bytes
    head: bytes  # the relayed request up to our Via line
    tail: bytes  # and after it
    routes: list[bytes]  # Route lines as relayed (for CANCEL and ACK, §9.1, §17.1.1.3)
    from_line: bytes
    to_line: bytes
    cid_line: bytes
    reply_lines: list[bytes]  # Via, From, To, Call-ID, CSeq lines for our own answers
    candidates: list[tuple[str, Address]]
    attempt: int = -1
    branch: str = ""
    data: bytes = b""  # what the current attempt sent
    responded: bool = False
    provisional: bool = False
    finished: bool = False  # the client side got its final answer (or gave up)
    answered: bool = False  # a final response went upstream
    acked: bool = False
    cancelled: bool = False
    cancel_data: bytes = b""
    cancel_done: bool = False
    last: bytes = b""  # last response sent upstream (for retransmitted requests)
    old: dict[str, Address] = field(default_factory=dict)  # failed attempts: branch -> node


class FastRelay:
    """Stateful relaying of ordinary calls on bytes; see the module docstring."""

    def __init__(
        self,
        me: Identity,
        dispatcher: Dispatcher,
        send: Send,
        *,
        branch_prefix: str,
        first_response_timeout: float,
        stats: dict[str, int],
    ) -> None:
        self.me = me
        self.dispatcher = dispatcher
        self.send = send
        self.branch_prefix = branch_prefix
        self.first_response_timeout = first_response_timeout
        self.stats = stats
        #: True while new calls should be refused (the full path answers 503).
        self.overloaded: Callable[[], bool] = lambda: False
        #: The local (host, port) relayed requests leave from, if not the default socket.
        self.outbound_local: tuple[str, int] | None = None
        self.servers: dict[tuple[str, str, str], Relay] = {}
        self.clients: dict[str, Relay] = {}
        # Finished transactions: key -> the final response to repeat (b"": absorb).
        self.memory: dict[object, bytes] = {}
        self._forget: deque[tuple[float, object]] = deque()
        self._forget_soon: deque[tuple[float, object]] = deque()
        # Deadlines of attempts by branch (FIFO: each kind has one duration).  Holding the
        # branch and not the relay lets a finished relay go at once.
        self._deadlines: dict[str, deque[tuple[float, str, int]]] = {
            "timeout": deque(), "c": deque()}  # fmt: skip
        self._slow_invites: dict[str, float] = {}
        self._timers: list[tuple[float, int, str, Relay, int, float]] = []
        self._seq = itertools.count()
        self._branch_base = f"{branch_prefix}{secrets.token_hex(6)}."
        self._branch_seq = itertools.count(1)
        self._via_text = ""
        self._rr_line = b""
        self._own: dict[bytes, bool] = {}
        self._hops: dict[str, Address | None] = {}
        self.set_identity(me)

    def set_identity(self, me: Identity) -> None:
        """Our name (a worker learns its private port after binding)."""
        self.me = me
        self._via_text = f"Via: SIP/2.0/UDP {me.host}:{me.via_port or me.port};branch="
        self._rr_line = f"Record-Route: {me.uri()}".encode()
        self._own = {}

    @property
    def enabled(self) -> bool:
        """Only a UDP identity is relayed here."""
        return self.me.transport == "udp"

    def note_slow_invite(self, branch: str | None, now: float) -> None:
        """The full path holds an INVITE transaction: its ACK must go there (§17.2.3)."""
        if branch:
            self._slow_invites[branch] = now + TIMEOUT

    # -- entry -------------------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> bool:
        """Relay one datagram; False when the full path must take it."""
        if source.transport != "udp" or not self.enabled:
            return False
        wire = split_message(data)
        if wire is None:
            return False
        via_line = wire.lines[wire.at["via"][0]]
        via = parse_top_via(via_line.partition(b":")[2].strip())
        if via is None:
            return False
        try:
            if wire.lines[0].startswith(b"SIP/2.0 "):
                return self._response(wire, via, now)
            return self._request(wire, via, source, now)
        except (ValueError, ParseError, UnicodeDecodeError):
            return False

    # -- requests ------------------------------------------------------------------------------

    def _request(self, wire: Wire, via: TopVia, source: Address, now: float) -> bool:
        method_b, _, rest = wire.lines[0].partition(b" ")
        if not rest.endswith(b" SIP/2.0") or not via.branch.startswith("z9hG4bK"):
            return False
        method = method_b.decode("ascii")
        cseq = wire.value("cseq") or b""
        number, _, cseq_method = cseq.partition(b" ")
        if cseq_method.strip() != method_b or not number.isdigit():
            return False
        if method == "ACK":
            return self._ack(wire, via, source, now)
        if method == "CANCEL":
            return self._cancel(wire, via, source, now)
        key = (via.branch, via.sent_by, method)
        relay = self.servers.get(key)
        if relay is not None:  # a retransmission (§17.2.1, §17.2.2)
            if relay.last:
                self.send(relay.last, relay.upstream)
            return True
        repeat = self.memory.get(key)
        if repeat is not None:
            if repeat:
                self.send(repeat, response_address(via, source))
            return True
        if wire.at.get("preq") or self.branch_prefix in b"".join(
            wire.lines[i] for i in wire.at["via"]
        ).decode("latin-1"):
            return False  # Proxy-Require (§16.3 step 5) or a loop (step 4): the full path
        if method == "INVITE":
            return self._invite(wire, via, source, key, now)
        if method in IN_DIALOG:
            return self._in_dialog(wire, via, source, key, method, now)
        return False

    def _max_forwards(self, wire: Wire) -> int | None:
        """The value less one, None when absent, malformed or exhausted (the full path answers)."""
        value = wire.value("mf")
        if value is None or not value.isdigit() or not 0 < int(value) <= 255:
            return None
        return int(value) - 1

    def _invite(
        self, wire: Wire, via: TopVia, source: Address, key: tuple[str, str, str], now: float
    ) -> bool:
        to = wire.value("to") or b""
        uri = wire.lines[0].split(b" ")[1]
        if has_to_tag(to) or "route" in wire.at or not uri.lower().startswith(b"sip:"):
            return False
        if b"cw-recv" in uri or self.dispatcher.is_destination(source):
            return False
        hops = self._max_forwards(wire)
        if hops is None or self.overloaded():
            return False
        call_id = (wire.value("cid") or b"").decode("utf-8", "surrogateescape")
        candidates = self.dispatcher.candidates_for_call(call_id, wire.request, now)
        if not candidates:
            return False  # the full path answers 404
        relay = self._new_relay(wire, via, source, key, "INVITE", hops, candidates, record=True)
        relay.last = self._answer(relay, 100, b"Trying", tag=False)
        self.send(relay.last, relay.upstream)
        self.servers[key] = relay
        self._next_attempt(relay, now)
        return True

    def _in_dialog(
        self,
        wire: Wire,
        via: TopVia,
        source: Address,
        key: tuple[str, str, str],
        method: str,
        now: float,
    ) -> bool:
        hop = self._pop_own_route(wire)
        if hop is None or not has_to_tag(wire.value("to") or b""):
            return False
        hops = self._max_forwards(wire)
        if hops is None:
            return False
        relay = self._new_relay(wire, via, source, key, method, hops, [("", hop)], record=False)
        self.servers[key] = relay
        self._next_attempt(relay, now)
        return True

    def _pop_own_route(self, wire: Wire) -> Address | None:
        """§16.4: drop our Route entry (it must be on top); the next hop (§16.6 step 6-7).

        None when the request does not route through us this simple way.
        """
        routes = wire.at.get("route")
        if not routes:
            return None
        index = routes[0]
        value = wire.lines[index].partition(b":")[2].strip()
        split = first_route(value)
        if split is None or b"cw-recv" in value:
            return None
        entry, rest = split
        if not self._is_own(entry):
            return None
        if rest:
            wire.set_value(index, rest)
            after = first_route(rest)
            text = route_uri(after[0]) if after is not None else ""
        else:
            wire.delete("route")
            more = wire.at.get("route")
            text = ""
            if more:
                after = first_route(wire.lines[more[0]].partition(b":")[2].strip())
                text = route_uri(after[0]) if after is not None else ""
            else:
                text = wire.lines[0].split(b" ")[1].decode("utf-8", "surrogateescape")
        if not text or "cw-recv" in text:
            return None
        return self._hop(text)

    def _is_own(self, entry: bytes) -> bool:
        """A Route entry naming us (cached: it is the same in every call)."""
        known = self._own.get(entry)
        if known is None:
            uri = parse_uri(route_uri(entry))
            known = isinstance(uri, SipURI) and self.me.is_me(uri)
            if len(self._own) >= CACHE_SIZE:
                self._own.clear()
            self._own[entry] = known
        return known

    def _hop(self, text: str) -> Address | None:
        """Where a URI sends a request (cached: a few nodes and phones' Contacts)."""
        if text in self._hops:
            return self._hops[text]
        target = parse_uri(text)
        hop = proxy.uri_address(target) if isinstance(target, SipURI) else None
        if len(self._hops) >= CACHE_SIZE:
            self._hops.clear()
        self._hops[text] = hop
        return hop

    def _new_relay(
        self,
        wire: Wire,
        via: TopVia,
        source: Address,
        key: tuple[str, str, str],
        method: str,
        hops: int,
        candidates: list[tuple[str, Address]],
        *,
        record: bool,
    ) -> Relay:
        lines = wire.lines
        at = wire.at
        top = at["via"][0]
        stamped = stamp_via(via, source)
        if stamped is not None:
            wire.set_value(top, via.line_value(stamped))
        upstream = response_address(via, source)
        reply = [lines[i] for i in at["via"]]
        reply += [lines[at[k][0]] for k in ("from", "to", "cid", "cseq")]
        wire.set_value(at["mf"][0], b"%d" % hops)
        routes = [lines[i] for i in at.get("route", ())]
        head = lines[:top]
        if record:
            rr = at.get("rr")
            where = rr[0] if rr else 1
            head = [*lines[:where], self._rr_line, *lines[where:top]]
        tail = b"\r\n".join(lines[top:]) + b"\r\n\r\n" + wire.body
        return Relay(
            method=method, key=key, upstream=upstream,
            call_id=(wire.value("cid") or b"").decode("utf-8", "surrogateescape"),
            cseq=(wire.value("cseq") or b"").partition(b" ")[0], request_line=lines[0],
            head=b"\r\n".join(head) + b"\r\n", tail=tail, routes=routes,
            from_line=lines[at["from"][0]], to_line=lines[at["to"][0]],
            cid_line=lines[at["cid"][0]], reply_lines=reply, candidates=candidates,
        )  # fmt: skip

    def _answer(self, relay: Relay, status: int, reason: bytes, *, tag: bool) -> bytes:
        """A response of our own to the relayed request (§8.2.6, §16.7 step 5)."""
        lines = [b"SIP/2.0 %d %s" % (status, reason), *relay.reply_lines]
        if tag and not has_to_tag(lines[-3].partition(b":")[2]):
            lines[-3] += b";tag=" + secrets.token_hex(6).encode()
        lines.append(b"Content-Length: 0")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def _outbound(self, dest: Address) -> Address:
        local = self.outbound_local
        if local is None:
            return dest
        return Address(dest.transport, dest.host, dest.port, local)

    def _next_attempt(self, relay: Relay, now: float) -> bool:
        """Send to the next candidate with a fresh branch; False when none is left."""
        if relay.attempt + 1 >= len(relay.candidates):
            return False
        if relay.branch and relay.branch not in relay.old:
            self.clients.pop(relay.branch, None)
        relay.attempt += 1
        relay.branch = f"{self._branch_base}{next(self._branch_seq)}"
        relay.data = b"".join(
            (relay.head, self._via_text.encode(), relay.branch.encode(), b";rport\r\n", relay.tail)
        )
        relay.responded = relay.provisional = relay.finished = False
        self.clients[relay.branch] = relay
        self.send(relay.data, self._outbound(relay.candidates[relay.attempt][1]))
        self.stats["forwarded"] += 1
        attempt = relay.attempt
        self._arm(now + T1, "retransmit", relay, T1)
        self._deadlines["timeout"].append((now + TIMEOUT, relay.branch, attempt))
        if relay.method == "INVITE":
            self._deadlines["c"].append((now + TIMER_C, relay.branch, attempt))
        more = attempt + 1 < len(relay.candidates)
        if relay.method == "INVITE" and more and self.first_response_timeout > 0:
            self._arm(now + self.first_response_timeout, "first", relay)
        return True

    def _cancel(self, wire: Wire, via: TopVia, source: Address, now: float) -> bool:
        """§16.10: answer 200, cancel the attempt once it has a provisional response."""
        relay = self.servers.get((via.branch, via.sent_by, "INVITE"))
        key = (via.branch, via.sent_by, "CANCEL")
        repeat = self.memory.get(key)
        if relay is None and repeat is None:
            return False  # the full path: 481 or its own INVITE
        address = response_address(via, source)
        if repeat is None:
            lines = [b"SIP/2.0 200 OK"] + [wire.lines[i] for i in wire.at["via"]]
            lines += [wire.lines[wire.at[k][0]] for k in ("from", "to", "cid", "cseq")]
            repeat = b"\r\n".join([*lines, b"Content-Length: 0"]) + b"\r\n\r\n"
            self._remember(key, repeat, now)
        self.send(repeat, address)
        if relay is not None and not relay.cancelled:
            relay.cancelled = True
            if relay.provisional and not relay.finished:
                self._send_cancel(relay, now)
        return True

    def _send_cancel(self, relay: Relay, now: float) -> None:
        via = self._via_text.encode() + relay.branch.encode() + b";rport"
        lines = [b"CANCEL " + relay.request_line.split(b" ")[1] + b" SIP/2.0", via,
                 *relay.routes, relay.from_line, relay.to_line, relay.cid_line,
                 b"CSeq: " + relay.cseq + b" CANCEL", b"Max-Forwards: 70",
                 b"Content-Length: 0"]  # fmt: skip
        relay.cancel_data = b"\r\n".join(lines) + b"\r\n\r\n"
        self.send(relay.cancel_data, self._outbound(relay.candidates[relay.attempt][1]))
        self._arm(now + T1, "cancel", relay, T1)

    def _ack(self, wire: Wire, via: TopVia, source: Address, now: float) -> bool:
        relay = self.servers.get((via.branch, via.sent_by, "INVITE"))
        if relay is not None:  # the ACK of our non-2xx final response (§17.2.1)
            relay.acked = True
            return True
        if via.branch in self._slow_invites:
            return False
        if self.memory.get(("ack", via.branch, via.sent_by)) is not None:
            return True  # a late ACK of our non-2xx final response
        if not has_to_tag(wire.value("to") or b""):
            return False
        hop = self._pop_own_route(wire)
        hops = self._max_forwards(wire)
        if hop is None or hops is None:
            return False
        stamped = stamp_via(via, source)
        if stamped is not None:
            wire.set_value(wire.at["via"][0], via.line_value(stamped))
        wire.set_value(wire.at["mf"][0], b"%d" % hops)
        top = wire.at["via"][0]
        branch = f"{self._branch_base}{next(self._branch_seq)}"
        wire.lines.insert(top, (self._via_text + branch + ";rport").encode())
        self.send(wire.to_bytes(), self._outbound(hop))
        return True

    # -- responses -----------------------------------------------------------------------------

    def _response(self, wire: Wire, via: TopVia, now: float) -> bool:
        branch = via.branch
        if not branch.startswith(self.branch_prefix):
            return False
        relay = self.clients.get(branch)
        if relay is None:
            known = self.memory.get(("client", branch))
            if known is None:
                return False  # stray: the full path relays it by its Via
            # A finished transaction absorbs repeated answers, except an INVITE's 2xx: the
            # caller needs it to repeat a lost ACK (§13.3.1.4), the full path relays it.
            return known == ABANDONED or not wire.lines[0].startswith(b"SIP/2.0 2")
        status = int(wire.lines[0][8:11])
        cseq_method = (wire.value("cseq") or b"").partition(b" ")[2].strip()
        if cseq_method == b"CANCEL":
            relay.cancel_done = status >= 200 or relay.cancel_done
            return True
        if cseq_method.decode("ascii") != relay.method:
            return True
        if branch != relay.branch:
            self._late(relay, branch, wire, status)
            return True
        if via.rest:
            wire.set_value(wire.at["via"][0], via.rest)  # our Via goes (§16.7 step 3)
        elif len(wire.at["via"]) > 1:
            wire.delete("via")
        else:
            return True  # ours was the only Via: nowhere to go
        if relay.method == "INVITE":
            self._invite_response(relay, wire, status, now)
        else:
            self._other_response(relay, wire, status, now)
        return True

    @staticmethod
    def _upstream(wire: Wire) -> bytes | None:
        """The response (our Via already cut off)."""
        return wire.to_bytes()

    def _invite_response(self, relay: Relay, wire: Wire, status: int, now: float) -> None:
        relay.responded = True
        if relay.finished:
            if status >= 300:
                self._send_ack(relay, wire, relay.branch)
            elif status >= 200 and (out := self._upstream(wire)) is not None:
                self.send(out, relay.upstream)  # a 2xx retransmission (§16.7, RFC 6026)
            return
        if status == 100:
            return
        if status < 200:
            relay.provisional = True
            self._relay(relay, wire)
            if relay.cancelled:
                self._send_cancel(relay, now)
            return
        relay.finished = True
        if status < 300:
            self._relay(relay, wire)
            self._accepted(relay, now)
            uri = relay.candidates[relay.attempt][0]
            if uri:
                self.dispatcher.call_started(uri, relay.call_id)
            return
        self._send_ack(relay, wire, relay.branch)
        relay.old[relay.branch] = relay.candidates[relay.attempt][1]
        failed = (status >= 500 or status == 408) and not relay.provisional
        if failed and self._failover(relay, now):
            return
        self._final(relay, wire, now)

    def _other_response(self, relay: Relay, wire: Wire, status: int, now: float) -> None:
        relay.responded = True
        if relay.finished or status == 100:
            return
        if status < 200:
            relay.provisional = True
            self._relay(relay, wire)
            return
        relay.finished = True
        failed = (status >= 500 or status == 408) and not relay.provisional
        if failed and self._failover(relay, now):
            return
        self._relay(relay, wire)
        self._complete(relay, now)
        if relay.method == "BYE":
            self.dispatcher.call_ended(relay.call_id)

    def _late(self, relay: Relay, branch: str, wire: Wire, status: int) -> None:
        """A response to an earlier attempt: ACK its retransmitted final answers."""
        if branch in relay.old and status >= 300:
            self._send_ack(relay, wire, branch)

    def _relay(self, relay: Relay, wire: Wire) -> None:
        out = self._upstream(wire)
        if out is not None:
            relay.last = out
            self.send(out, relay.upstream)

    def _send_ack(self, relay: Relay, wire: Wire, branch: str) -> None:
        """§17.1.1.3: the ACK of a non-2xx final response, to the node that sent it."""
        to_line = wire.lines[wire.at["to"][0]]
        via = self._via_text.encode() + branch.encode() + b";rport"
        lines = [b"ACK " + relay.request_line.split(b" ")[1] + b" SIP/2.0", via, *relay.routes,
                 relay.from_line, to_line, relay.cid_line, b"CSeq: " + relay.cseq + b" ACK",
                 b"Max-Forwards: 70", b"Content-Length: 0"]  # fmt: skip
        dest = relay.old.get(branch) or relay.candidates[relay.attempt][1]
        self.send(b"\r\n".join(lines) + b"\r\n\r\n", self._outbound(dest))

    # -- outcomes ------------------------------------------------------------------------------

    def _failover(self, relay: Relay, now: float) -> bool:
        """The attempt failed (5xx, 408, silence): the next candidate, if any (§16.7 step 6)."""
        failed_uri, failed_at = relay.candidates[relay.attempt]
        if failed_uri:
            self.dispatcher.failed(failed_uri, now)
        if relay.cancelled or not self._next_attempt(relay, now):
            return False
        self.stats["failover"] += 1
        log.info("%s failed at %s: trying %s (Call-ID %s)", relay.method, failed_at,
                 relay.candidates[relay.attempt][1], relay.call_id)  # fmt: skip
        return True

    def _final(self, relay: Relay, wire: Wire | None, now: float) -> None:
        """A final non-2xx answer goes upstream (relayed, or ours when there is none)."""
        relay.finished = True
        if wire is not None:
            self._relay(relay, wire)
        else:
            status, reason = (487, b"Request Terminated") if relay.cancelled else (
                (503, b"Service Unavailable") if relay.candidates[relay.attempt][0]
                else (408, b"Request Timeout"))  # fmt: skip
            relay.last = self._answer(relay, status, reason, tag=True)
            self.send(relay.last, relay.upstream)
        relay.answered = True
        if relay.method == "INVITE":
            self._arm(now + T1, "g", relay, T1)  # Timer G until the ACK (§17.2.1)
            self._arm(now + TIMEOUT, "h", relay)
        else:
            self._complete(relay, now)

    def _accepted(self, relay: Relay, now: float) -> None:
        """A 2xx went upstream: the transactions end; retransmitted INVITEs are absorbed."""
        self._drop(relay)
        self._remember(relay.key, b"", now)
        self._remember(("client", relay.branch), b"", now, soon=True)

    def _complete(self, relay: Relay, now: float) -> None:
        """A non-INVITE final answer went upstream: keep it for retransmissions (Timer J)."""
        self._drop(relay)
        self._remember(relay.key, relay.last, now)
        self._remember(("client", relay.branch), b"", now, soon=True)

    def _drop(self, relay: Relay) -> None:
        if self.servers.get(relay.key) is relay:
            del self.servers[relay.key]
        self.clients.pop(relay.branch, None)
        for branch in relay.old:
            self.clients.pop(branch, None)

    def _remember(self, key: object, response: bytes, now: float, *, soon: bool = False) -> None:
        """Keep ``key`` for 32 s (Timers J, L), or for 5 s with ``soon`` (Timer K)."""
        self.memory[key] = response
        if soon:
            self._forget_soon.append((now + T4, key))
        else:
            self._forget.append((now + TIMEOUT, key))

    # -- timers ----------------------------------------------------------------------------------

    def _arm(self, when: float, kind: str, relay: Relay, interval: float = 0.0) -> None:
        entry = (when, next(self._seq), kind, relay, relay.attempt, interval)
        heapq.heappush(self._timers, entry)

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work."""
        return self._timers[0][0] if self._timers else None

    def handle_timer(self, now: float) -> None:
        """Retransmissions, timeouts and forgetting (§17.1.1.2, §17.1.2.2, §17.2.1)."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, kind, relay, attempt, interval = heapq.heappop(timers)
            if attempt == relay.attempt:  # else: an earlier attempt's timer
                self._fire(kind, relay, interval, now)
        for forget in (self._forget, self._forget_soon):
            while forget and forget[0][0] <= now:
                self.memory.pop(forget.popleft()[1], None)
        for kind, deadlines in self._deadlines.items():
            while deadlines and deadlines[0][0] <= now:
                _, branch, attempt = deadlines.popleft()
                live = self.clients.get(branch)
                if live is not None and live.branch == branch and live.attempt == attempt:
                    self._fire(kind, live, 0.0, now)
        if self._slow_invites:
            self._slow_invites = {b: t for b, t in self._slow_invites.items() if t > now}

    def _fire(self, kind: str, relay: Relay, interval: float, now: float) -> None:
        if kind == "g":
            self._timer_g(relay, interval, now)
        elif kind == "h":
            self._forget_invite(relay, now)
        elif kind == "cancel":
            if not relay.cancel_done and not relay.answered:
                self.send(relay.cancel_data, self._outbound(relay.candidates[relay.attempt][1]))
                self._arm(now + min(2 * interval, T2), "cancel", relay, min(2 * interval, T2))
        elif relay.finished:
            return
        elif kind == "retransmit":
            self._retransmit(relay, interval, now)
        elif kind == "first" and not relay.responded:
            self._give_up(relay, now, abandon=True)
        elif kind == "timeout" and (relay.method != "INVITE" or not relay.responded):
            self._give_up(relay, now, abandon=False)
        elif kind == "c":
            self._timer_c(relay, now)

    def _timer_c(self, relay: Relay, now: float) -> None:
        """§16.8: a ringing attempt is cancelled (its 487 goes upstream); a silent one fails."""
        if relay.provisional:
            if not relay.cancel_data:
                relay.cancelled = True
                self._send_cancel(relay, now)
            return
        self._give_up(relay, now, abandon=False)

    def _retransmit(self, relay: Relay, interval: float, now: float) -> None:
        """Timer A (INVITE, until any response) and Timer E (others, until final)."""
        if relay.method == "INVITE":
            if relay.responded:
                return
            interval *= 2
        else:
            interval = T2 if relay.provisional else min(2 * interval, T2)
        self.send(relay.data, self._outbound(relay.candidates[relay.attempt][1]))
        self._arm(now + interval, "retransmit", relay, interval)

    def _give_up(self, relay: Relay, now: float, *, abandon: bool) -> None:
        """No (final) answer from the node in time: the next one, or an error upstream."""
        self.clients.pop(relay.branch, None)
        self._remember(("client", relay.branch), ABANDONED, now)  # late answers: all dropped
        if not abandon:
            relay.finished = True
        if self._failover(relay, now):
            return
        self._final(relay, None, now)

    def _timer_g(self, relay: Relay, interval: float, now: float) -> None:
        if relay.acked or self.servers.get(relay.key) is not relay:
            return
        self.send(relay.last, relay.upstream)
        interval = min(2 * interval, T2)
        self._arm(now + interval, "g", relay, interval)

    def _forget_invite(self, relay: Relay, now: float) -> None:
        """Timer H: the INVITE ends; a late ACK is still absorbed."""
        self._drop(relay)
        self._remember(("ack", relay.key[0], relay.key[1]), b"", now)

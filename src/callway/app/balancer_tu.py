"""The balancer's transaction user: a transaction-stateful proxy (RFC 3261 §16).

For each request it either answers itself (OPTIONS to the balancer, errors,
``404 No destination``), or forwards it: initial requests to the node the
dispatcher picks, in-dialog requests along their Route set.  If the chosen
node times out or answers 5xx before any provisional response, the request
goes to the next candidate (Kamailio's ``ds_next_dst`` in a failure route)
and the caller never notices; the node is reported to the prober.

When the shell says it is overloaded (:attr:`BalancerUser.overloaded`), a new
INVITE is answered ``503`` with ``Retry-After`` instead of being relayed:
cheap to send, and the calls already relayed keep their share of the loop.

With a media relay (:attr:`BalancerUser.media`, ``media_relay`` in
callway.toml), SDP bodies are offered to and answered by an ng relay the
way Kamailio's ``rtpengine_manage()`` does (:mod:`callway.balancer.media`):
the message waits for the relay's SDP, then goes on with it; BYE, CANCEL
and a failed initial INVITE delete the call there.  A relay that does not
answer leaves the message unchanged.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from callway.balancer import proxy
from callway.balancer.media import (
    NgCommand,
    NgReply,
    replace_sdp,
    reply_reason,
    reply_sdp,
    request_command,
    response_command,
    sdp_of,
)
from callway.balancer.proxy import Identity
from callway.core.address import Address
from callway.ops.logs import call_context
from callway.sip.errors import ParseError
from callway.sip.message import Request, Response, make_response, parse_message
from callway.sip.transaction import (
    AckReceived,
    ClientTransactionKey,
    RequestReceived,
    ResponseReceived,
    ServerTransactionKey,
    StrayResponse,
    TransactionError,
    TransactionEvent,
    TransactionLayer,
    TransactionTimeout,
    build_cancel,
    new_branch,
)
from callway.sip.uri import SipURI
from callway.sip.validate import validate_request

log = logging.getLogger("callway.balancer")

BRANCH_PREFIX = "z9hG4bKcwb"
# Kamailio's fr_timer as dispatcher set-ups use it (``t_set_fr(0, 2000)``): a
# node that sends nothing at all, not even 100 Trying, within this many seconds
# is given up for the next candidate; Timer B/F (32 s) would be far too late.
FIRST_RESPONSE_TIMEOUT = 2.0
# How long responses from an abandoned attempt are recognised and dropped (64*T1).
ABANDONED_MEMORY = 32.0
RETRY_AFTER = "2"  # seconds, in the 503 sent while overloaded
SDP_MEMORY = 1024  # relayed SDP bodies remembered for retransmitted 2xx responses
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, NOTIFY, REFER, MESSAGE"


class Picker(Protocol):
    """The dispatcher as the proxy sees it."""

    def candidates(self, request: Request, now: float) -> list[tuple[str, Address]]:
        """Destinations to try in order: (destination URI, address)."""

    def failed(self, uri: str, now: float) -> None:
        """A relayed request to ``uri`` timed out or got a 5xx."""

    def call_started(self, uri: str, call_id: str) -> None:
        """An INVITE to ``uri`` was answered (call-load accounting)."""

    def call_ended(self, call_id: str) -> None:
        """A BYE for the call went through."""

    def is_destination(self, source: Address) -> bool:
        """True if ``source`` is one of the nodes (Kamailio's ``ds_is_from_list``)."""


class MediaRelay(Protocol):
    """An ng media relay as the proxy sees it (:mod:`callway.app.balancer_media`)."""

    def request(self, command: NgCommand, done: Callable[[NgReply | None], None]) -> None:
        """Send ``command``; ``done`` gets the reply, or None when the relay is silent."""


class Port(Protocol):
    """What the proxy needs from the SIP stack."""

    transactions: TransactionLayer

    def send_response(self, key: object, response: Response) -> None:
        """Answer through a server transaction."""

    def send_request(self, request: Request, dest: Address) -> object:
        """Start a client transaction."""

    def send_stateless(self, message: Request | Response, dest: Address) -> None:
        """Forward without a transaction."""


@dataclass(slots=True)
class Forward:
    """One proxied request: its server transaction and the attempts made."""

    server_key: ServerTransactionKey
    request: Request  # as received, then as last forwarded (our Via on top)
    source: Address
    method: str
    candidates: list[tuple[str, Address]]
    attempt: int = -1
    client_key: ClientTransactionKey | None = None
    forwarded: Request | None = None
    provisional: bool = False
    responded: bool = False
    finished: bool = False
    cancelled: bool = False
    last: Response | None = None
    dest_uri: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    offer_sent: bool = False  # the INVITE carried SDP: SDP in its responses is the answer
    initial: bool = False  # an INVITE without To tag: its failure ends the call
    waiting: list[Response] | None = None  # responses behind one held for the media relay


class BalancerUser:
    """Proxy logic on top of the transaction layer."""

    def __init__(
        self,
        port: Port,
        me: Identity,
        picker: Picker,
        *,
        clock: Callable[[], float],
        server_header: str = "callway balancer",
        first_response_timeout: float = FIRST_RESPONSE_TIMEOUT,
    ) -> None:
        self.port = port
        self.first_response_timeout = first_response_timeout
        self._fr_timers: list[tuple[float, int, ClientTransactionKey]] = []
        self._fr_seq = 0
        self._abandoned: dict[str, float] = {}
        self.me = me
        self.picker = picker
        self.clock = clock
        self.server_header = server_header
        self.by_client: dict[ClientTransactionKey, Forward] = {}
        self.by_server: dict[ServerTransactionKey, Forward] = {}
        self.stats = {"forwarded": 0, "failover": 0, "no_destination": 0, "local": 0,
                      "overload": 0}  # fmt: skip
        #: True while new calls should be refused (the shell's measure of loop lag).
        self.overloaded: Callable[[], bool] = lambda: False
        #: The local (host, port) requests leave from (a worker's private port), if not the
        #: default socket.
        self.outbound_local: tuple[str, int] | None = None
        #: The ng media relay SDP bodies go through, if any.
        self.media: MediaRelay | None = None
        self._sdp_memory: dict[tuple[str, bytes], bytes] = {}

    # -- timers (the first-response timeout, like Kamailio's fr_timer) ---------------------

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work."""
        return self._fr_timers[0][0] if self._fr_timers else None

    def handle_timer(self, now: float) -> None:
        """Give up attempts that got no response at all in time: try the next node."""
        while self._fr_timers and self._fr_timers[0][0] <= now:
            _, _, key = heapq.heappop(self._fr_timers)
            fwd = self.by_client.get(key)
            if fwd is None or fwd.responded or fwd.finished or fwd.client_key != key:
                continue
            self._abandon(fwd, key, now)
            self._attempt_failed(key, None, now)
        if self._abandoned:
            self._abandoned = {b: t for b, t in self._abandoned.items() if t > now}

    def _abandon(self, fwd: Forward, key: ClientTransactionKey, now: float) -> None:
        """Stop the silent attempt's transaction; drop whatever it answers later."""
        self.port.transactions.terminate(key)
        if fwd.forwarded is not None:
            branch = fwd.forwarded.via.branch
            if branch:
                self._abandoned[branch] = now + ABANDONED_MEMORY

    def _arm_first_response(self, fwd: Forward, key: ClientTransactionKey, now: float) -> None:
        if fwd.attempt + 1 < len(fwd.candidates) and self.first_response_timeout > 0:
            self._fr_seq += 1
            deadline = now + self.first_response_timeout
            heapq.heappush(self._fr_timers, (deadline, self._fr_seq, key))

    # -- events ------------------------------------------------------------------------

    def handle_event(self, event: TransactionEvent, now: float) -> None:
        """One transaction event; its log lines carry the message's Call-ID."""
        message = getattr(event, "request", None) or getattr(event, "response", None)
        call_id = message.get("call-id") if isinstance(message, Request | Response) else None
        with call_context(call_id.strip() if call_id else None):
            self._handle_event(event, now)

    def _handle_event(self, event: TransactionEvent, now: float) -> None:
        if isinstance(event, RequestReceived):
            self._request(event.key, event.request, event.source, now)
        elif isinstance(event, ResponseReceived):
            self._response(event.key, event.response, now)
        elif isinstance(event, TransactionTimeout):
            if isinstance(event.key, ClientTransactionKey):
                self._attempt_failed(event.key, None, now)
        elif isinstance(event, AckReceived):
            self._forward_ack(event.request)
        elif isinstance(event, StrayResponse):
            self._stray(event.response)

    def _reply(
        self,
        key: ServerTransactionKey,
        request: Request,
        status: int,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        response = make_response(request, status, reason, to_tag=new_branch()[7:19])
        for name, value in headers:
            response.add(name, value)
        response.add("Server", self.server_header)
        self.port.send_response(key, response)

    # -- requests ----------------------------------------------------------------------------

    def _request(
        self, key: ServerTransactionKey, request: Request, source: Address, now: float
    ) -> None:
        try:
            validate_request(request, forwarding=True)
            if request.method == "CANCEL":
                self._cancel(key, request)
                return
            if self._is_local(request):
                self.stats["local"] += 1
                allow = (("Allow", ALLOW), ("Accept", "application/sdp"))
                self._reply(key, request, 200, headers=allow)
                return
            self._forward(key, request, source, now)
        except ParseError as exc:
            if exc.status_hint is not None:
                self._reply(key, request, exc.status_hint, None, exc.headers)

    def _is_local(self, request: Request) -> bool:
        """OPTIONS addressed to the balancer itself (keepalived's sipsak probe)."""
        if request.method != "OPTIONS" or request.get_all("route"):
            return False
        uri = request.uri
        return request.to.tag is None and isinstance(uri, SipURI) and self.me.is_me(uri)

    def _forward(
        self, key: ServerTransactionKey, request: Request, source: Address, now: float
    ) -> None:
        own_route = proxy.strip_own_route(request, self.me)
        from_node = self.picker.is_destination(source)
        if own_route is None and proxy.is_initial(request) and not from_node:
            if request.method == "INVITE" and self.overloaded():
                self.stats["overload"] += 1
                self._reply(key, request, 503, headers=(("Retry-After", RETRY_AFTER),))
                return
            candidates = self.picker.candidates(request, now)
            if not candidates:
                self.stats["no_destination"] += 1
                self._reply(key, request, 404, "No destination")
                return
        else:
            hop = proxy.next_hop(request)
            if own_route is not None and proxy.RECEIVED_PARAM in own_route.params:
                # Our Path entry: the phone's real (NAT) address it registered from.
                hop = proxy.uri_address(own_route)
            if hop is None:
                self._reply(key, request, 416)
                return
            candidates = [("", hop)]
        proxy.decrement_max_forwards(request)
        proxy.detect_loop(request, self.me, BRANCH_PREFIX)
        if request.method == "REGISTER" and not from_node:
            proxy.add_path(request, self.me, source)
        else:
            proxy.add_record_route(request, self.me)
        fwd = Forward(key, request, source, request.method, candidates)
        self.by_server[key] = fwd
        command = request_command(request) if self.media is not None else None
        if command is None or command.command == "delete":
            if command is not None:
                self._media_fire(command)
            self._next_attempt(fwd, now)
            return
        fwd.offer_sent = True
        fwd.initial = request.method == "INVITE" and request.to.tag is None
        self._media_hold(command, request, lambda: self._offered(fwd))

    def _offered(self, fwd: Forward) -> None:
        """The relay answered the INVITE's offer (or gave up): forward it, unless cancelled."""
        if not fwd.cancelled:
            self._next_attempt(fwd, self.clock())
            return
        fwd.finished = True
        self.by_server.pop(fwd.server_key, None)
        self._reply(fwd.server_key, fwd.request, 487)
        tags = request_command(fwd.request)
        if tags is not None:
            self._media_fire(NgCommand("delete", tags.call_id, tags.from_tag))

    def _next_attempt(self, fwd: Forward, now: float) -> bool:
        """Send to the next candidate; False when none is left."""
        while fwd.attempt + 1 < len(fwd.candidates):
            fwd.attempt += 1
            uri, dest = fwd.candidates[fwd.attempt]
            request = fwd.request if fwd.forwarded is None else self._pristine(fwd)
            proxy.push_via(request, self.me, f"{BRANCH_PREFIX}{new_branch()[7:]}")
            try:
                client_key = self.port.send_request(request, self._outbound(dest))
            except TransactionError as exc:
                log.warning("cannot forward to %s: %s", dest, exc)
                continue
            assert isinstance(client_key, ClientTransactionKey)
            if fwd.client_key is not None:
                self.by_client.pop(fwd.client_key, None)
            fwd.client_key = client_key
            fwd.forwarded = request
            fwd.dest_uri = uri
            self.by_client[client_key] = fwd
            self.stats["forwarded"] += 1
            self._arm_first_response(fwd, client_key, now)
            return True
        return False

    @staticmethod
    def _pristine(fwd: Forward) -> Request:
        """A fresh copy of the request without our Via (for the next attempt).

        The first attempt sends the received request itself (no copy on the
        hot path); a failover re-parses what was sent and drops our Via.
        """
        assert fwd.forwarded is not None
        request = parse_message(fwd.forwarded.to_bytes())
        assert isinstance(request, Request)
        request.pop_first("via")
        return request

    def _cancel(self, key: ServerTransactionKey, cancel: Request) -> None:
        """§16.10: answer the CANCEL, cancel what we forwarded."""
        invite_key = self.port.transactions.find_invite_server_transaction(cancel)
        fwd = self.by_server.get(invite_key) if invite_key is not None else None
        if fwd is None:
            self._reply(key, cancel, 481)
            return
        self._reply(key, cancel, 200)
        fwd.cancelled = True
        command = request_command(cancel) if self.media is not None else None
        if command is not None:
            self._media_fire(command)
        if fwd.forwarded is not None and fwd.client_key is not None and fwd.provisional:
            self._send_cancel(fwd)

    def _send_cancel(self, fwd: Forward) -> None:
        assert fwd.forwarded is not None
        dest = fwd.candidates[fwd.attempt][1]
        try:
            self.port.send_request(build_cancel(fwd.forwarded), self._outbound(dest))
        except TransactionError as exc:
            log.debug("CANCEL not sent: %s", exc)

    # -- the media relay (Kamailio's rtpengine_manage) -----------------------------------------

    def _media_fire(self, command: NgCommand) -> None:
        """A ``delete``: nothing waits for its reply."""
        if self.media is not None:
            self.media.request(command, _ignore)

    def _media_hold(self, command: NgCommand, message: Request | Response,
                    then: Callable[[], None]) -> None:  # fmt: skip
        """Ask the relay; put its SDP in ``message`` and call ``then`` when it answered."""
        assert self.media is not None

        def done(reply: NgReply | None) -> None:
            with call_context(command.call_id):
                self._media_apply(command, message, reply)
                then()

        self.media.request(command, done)

    def _media_apply(self, command: NgCommand, message: Request | Response,
                     reply: NgReply | None) -> None:  # fmt: skip
        """The relay's SDP into ``message`` (unchanged without one); remembered for repeats."""
        original = command.sdp or b""
        sdp = reply_sdp(reply)
        if sdp is None:
            if reply is not None:
                log.warning("media relay refused %s: %s", command.command, reply_reason(reply))
            sdp = original
        else:
            replace_sdp(message, sdp)
        if len(self._sdp_memory) >= SDP_MEMORY:
            del self._sdp_memory[next(iter(self._sdp_memory))]
        self._sdp_memory[command.call_id, original] = sdp

    def _upstream(self, fwd: Forward, response: Response) -> None:
        """Relay a response upstream, through the media relay when it carries SDP (in order)."""
        if fwd.waiting is not None:
            fwd.waiting.append(response)
            return
        command = None
        if self.media is not None and fwd.method in ("INVITE", "UPDATE"):
            command = response_command(response, offer_sent=fwd.offer_sent, initial=fwd.initial)
        if command is None or command.command == "delete":
            if command is not None:
                self._media_fire(command)
            self._relay_upstream(fwd, response)
            return
        fwd.waiting = []
        self._media_hold(command, response, lambda: self._release(fwd, response))

    def _release(self, fwd: Forward, response: Response) -> None:
        self._relay_upstream(fwd, response)
        waiting, fwd.waiting = fwd.waiting or [], None
        for index, later in enumerate(waiting):
            self._upstream(fwd, later)
            if fwd.waiting is not None:  # held again: the rest queue behind it
                fwd.waiting.extend(waiting[index + 1 :])
                return

    def _forward_ack(self, ack: Request) -> None:
        """ACK for a 2xx: stateless, along its Route set (§16.11); its SDP is an answer."""
        command = request_command(ack) if self.media is not None else None
        if command is not None and command.command == "answer":
            self._media_hold(command, ack, lambda: self._send_ack(ack))
            return
        self._send_ack(ack)

    def _send_ack(self, ack: Request) -> None:
        try:
            proxy.strip_own_route(ack, self.me)
            hop = proxy.next_hop(ack)
            if hop is None:
                return
            proxy.decrement_max_forwards(ack)
            proxy.push_via(ack, self.me, f"{BRANCH_PREFIX}{new_branch()[7:]}")
        except ParseError as exc:
            log.info("dropping ACK: %s", exc.reason)
            return
        self.port.send_stateless(ack, self._outbound(hop))

    def _outbound(self, dest: Address) -> Address:
        """``dest`` sent from :attr:`outbound_local` (our Via names that port)."""
        local = self.outbound_local
        if local is None or dest.transport != "udp":
            return dest
        return dataclasses.replace(dest, local=local)

    # -- responses -----------------------------------------------------------------------------

    def _response(self, key: ClientTransactionKey, response: Response, now: float) -> None:
        fwd = self.by_client.get(key)
        if fwd is None:
            self._stray(response)
            return
        fwd.responded = True
        status = response.status
        if status < 200:
            if status == 100:
                return  # hop-by-hop (§16.7 step 5)
            fwd.provisional = True
            if fwd.cancelled:
                self._send_cancel(fwd)
        elif (status >= 500 or status == 408) and not fwd.provisional:
            self._attempt_failed(key, response, now)
            return
        self._upstream(fwd, response)
        if status >= 200:
            self._done(fwd, key, response)

    def _relay_upstream(self, fwd: Forward, response: Response) -> None:
        if proxy.pop_via(response, self.me) is None:
            return
        try:
            self.port.send_response(fwd.server_key, response)
        except TransactionError:
            self._stray_send(response)  # e.g. a 2xx after the server transaction ended

    def _done(self, fwd: Forward, key: ClientTransactionKey, response: Response) -> None:
        fwd.finished = True
        self.by_server.pop(fwd.server_key, None)
        self.by_client.pop(key, None)
        if fwd.method == "INVITE" and response.status // 100 == 2 and fwd.dest_uri:
            self.picker.call_started(fwd.dest_uri, response.call_id)
        elif fwd.method == "BYE":
            self.picker.call_ended(response.call_id)

    def _attempt_failed(self, key: ClientTransactionKey, response: Response | None,
                        now: float) -> None:  # fmt: skip
        fwd = self.by_client.pop(key, None)
        if fwd is None or fwd.finished:
            return
        if fwd.dest_uri:
            self.picker.failed(fwd.dest_uri, now)
        if not fwd.cancelled and self._next_attempt(fwd, now):
            self.stats["failover"] += 1
            call_id = fwd.forwarded.call_id if fwd.forwarded is not None else "?"
            log.info("%s failed at %s: trying %s (Call-ID %s)", fwd.method,
                     fwd.candidates[fwd.attempt - 1][1], fwd.candidates[fwd.attempt][1],
                     call_id)  # fmt: skip
            return
        fwd.finished = True
        self.by_server.pop(fwd.server_key, None)
        if response is not None:
            self._upstream(fwd, response)
            return
        if fwd.initial:
            command = request_command(fwd.request)
            if command is not None:
                self._media_fire(NgCommand("delete", command.call_id, command.from_tag))
        request = fwd.request if fwd.forwarded is None else self._pristine(fwd)
        status = 408 if fwd.dest_uri == "" else 503
        self._reply(fwd.server_key, request, status)

    def _stray(self, response: Response) -> None:
        """A response with no transaction: forward it by its Via (§16.7, RFC 6026)."""
        if self._abandoned and self._from_abandoned(response):
            return
        if proxy.pop_via(response, self.me) is None:
            return
        if self.media is not None and not self._stray_sdp(response):
            return
        self._stray_send(response)

    def _stray_sdp(self, response: Response) -> bool:
        """A repeated 2xx gets the SDP its first copy got; False: not known yet, drop it."""
        sdp = sdp_of(response)
        try:
            if sdp is None or response.cseq.method not in ("INVITE", "UPDATE"):
                return True
            relayed = self._sdp_memory.get((response.call_id, sdp))
        except ParseError:
            return True
        if relayed is None:
            return False
        if relayed != sdp:
            replace_sdp(response, relayed)
        return True

    def _from_abandoned(self, response: Response) -> bool:
        try:
            return response.via.branch in self._abandoned
        except ParseError:
            return False

    def _stray_send(self, response: Response) -> None:
        try:
            dest = proxy.via_address(response.via)
        except ParseError:
            return
        self.port.send_stateless(response, dest)


def _ignore(reply: NgReply | None) -> None:
    """The reply to a ``delete``."""

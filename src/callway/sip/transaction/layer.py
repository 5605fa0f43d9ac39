"""The transaction layer: the TU's façade over all transactions (RFC 3261 §17).

Sans-I/O in the aioquic style: every entry point takes ``now``; what must go
on the wire collects in :meth:`TransactionLayer.messages_to_send` as
``(message, address)`` pairs; what the TU must know comes out of
:meth:`TransactionLayer.next_event`; the shell calls
:meth:`TransactionLayer.handle_timer` at :meth:`TransactionLayer.get_timer`.

A transaction is dropped the moment it enters Terminated (§17.1.1.2).

A non-INVITE server transaction over UDP that sent its final response only
waits in Completed for Timer J (64*T1 = 32 s) to absorb retransmitted
requests (§17.2.2).  A registrar answering thousands of REGISTERs a second
holds hundreds of thousands of them, so there it shrinks to a
:class:`_Resting` record (the response bytes and where they go) in a dict,
and its Timer J to an entry of a first-in first-out queue: every Timer J has
the same length, so the queue stays in deadline order without a heap.

A shell drives it like this (aioquic's ``transmit()`` pattern)::

    layer.receive_request(request, source, now=loop.time())   # or receive_response
    for message, address in layer.messages_to_send():
        send(message.to_bytes(), address)       # address.local / .conn pick the socket
    while (event := layer.next_event()) is not None:
        tu.handle(event)                        # may call send_response / send_request
    deadline = layer.get_timer()                # re-arm one loop timer; on expiry:
    layer.handle_timer(now=max(deadline, loop.time()))
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import NamedTuple

from callway.core.address import Address
from callway.sip.message import Request, Response, parse_message
from callway.sip.transaction.client import (
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
)
from callway.sip.transaction.events import (
    AckReceived,
    ClientTransactionKey,
    RequestReceived,
    ServerTransactionKey,
    StrayResponse,
    TransactionEvent,
    TransactionKey,
    TransportError,
)
from callway.sip.transaction.machine import (
    Input,
    Outputs,
    State,
    Transaction,
    TransactionError,
    response_input,
)
from callway.sip.transaction.matching import (
    client_key,
    legacy_ack_key,
    response_server_key,
    server_key,
)
from callway.sip.transaction.server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
)
from callway.sip.transaction.timers import Interval, TransactionConfig

_NON_INVITE_ANSWERABLE = frozenset({State.TRYING, State.PROCEEDING})


class _Resting(NamedTuple):
    """A non-INVITE server transaction in Completed over UDP, waiting for Timer J."""

    response: bytes
    peer: Address
    deadline: float
    #: The response object while someone still holds it (resent as is, unparsed).
    ref: weakref.ref[Response]

    def message(self) -> Response:
        """The response to resend: the live object, else parsed from its bytes."""
        live = self.ref()
        if live is not None and live.to_bytes() is self.response:
            return live
        parsed = parse_message(self.response)
        assert isinstance(parsed, Response)
        return parsed


def _dead_ref() -> weakref.ref[Response]:
    gone = Response(200)
    ref = weakref.ref(gone)
    del gone
    return ref


_DEAD_REF = _dead_ref()  # a resting response that only ever existed as bytes


class TransactionLayer:
    """Owns every client and server transaction of one SIP element."""

    def __init__(self, config: TransactionConfig | None = None) -> None:
        self.config = config or TransactionConfig()
        self._out = Outputs()
        self._clients: dict[ClientTransactionKey, ClientTransaction] = {}
        self._servers: dict[ServerTransactionKey, ServerTransaction] = {}
        # RFC 2543 ACKs carry the To tag of our final response (§17.2.3).
        self._ack_aliases: dict[ServerTransactionKey, ServerTransactionKey] = {}
        # Completed non-INVITE server transactions over UDP (see the module docstring).
        self._resting: dict[ServerTransactionKey, _Resting] = {}
        self._timer_j: deque[tuple[float, ServerTransactionKey]] = deque()
        self._timer_j_interval = self.config.interval(
            Interval.T1_X64_OR_ZERO, reliable=False, last=None
        )

    # -- client side (§17.1) ---------------------------------------------------

    def send_request(self, request: Request, dest: Address, now: float) -> ClientTransactionKey:
        """Start a client transaction for ``request`` and send it to ``dest``.

        The TU has put a Via with a fresh branch on top (:func:`new_branch`,
        §8.1.1.7).  ACK is not a transaction: send the ACK for a 2xx with
        :meth:`send_stateless` (§13.2.2.4, §17.1.1.3).
        """
        if request.method == "ACK":
            raise TransactionError("ACK creates no transaction; use send_stateless()")
        key = client_key(request)
        if key is None:
            raise TransactionError("the top Via of a request needs a branch (§8.1.1.7)")
        if key in self._clients:
            raise TransactionError(f"branch {key.branch} already in use for {key.method}")
        kind: type[ClientTransaction] = NonInviteClientTransaction
        if request.method == "INVITE":
            kind = InviteClientTransaction
        transaction = kind(key, request, dest, self.config, self._out)
        self._clients[key] = transaction
        self._run(transaction, Input.SEND_REQUEST, now)
        return key

    def receive_response(self, response: Response, source: Address, now: float) -> None:
        """Hand a response to its client transaction (§17.1.3), or report it as stray."""
        key = client_key(response)
        transaction = self._clients.get(key) if key is not None else None
        if transaction is None:
            self._out.events.append(StrayResponse(response, source))
            return
        self._run(transaction, response_input(response.status, from_tu=False), now, response)

    # -- server side (§17.2) ---------------------------------------------------

    def receive_request(self, request: Request, source: Address, now: float) -> None:
        """Match a request to a server transaction (§17.2.3) or create one.

        A new request is reported as :class:`RequestReceived`; retransmissions
        are absorbed (the last response is sent again).  An ACK never creates
        a transaction: one that matches none is reported as :class:`AckReceived`.
        """
        key = server_key(request)
        if request.method == "ACK":
            self._receive_ack(request, key, source, now)
            return
        transaction = self._servers.get(key)
        if transaction is None:
            resting = self._resting.get(key)
            if resting is not None:  # §17.2.2: Completed resends the final response
                self._out.messages.append((resting.message(), resting.peer))
                return
            if request.method != "INVITE":
                # Figure 8, (Init, request) -> Trying, "pass to TU", without the table run.
                transaction = NonInviteServerTransaction(
                    key, request, source, self.config, self._out
                )
                transaction.state = State.TRYING
                self._servers[key] = transaction
                self._out.events.append(RequestReceived(key, request, source))
                return
            transaction = InviteServerTransaction(key, request, source, self.config, self._out)
            self._servers[key] = transaction
        self._run(transaction, Input.RECV_REQUEST, now, request, source)

    def _receive_ack(
        self, ack: Request, key: ServerTransactionKey, source: Address, now: float
    ) -> None:
        transaction = self._servers.get(self._ack_aliases.get(key, key))
        if transaction is None or not isinstance(transaction, InviteServerTransaction):
            self._out.events.append(AckReceived(ack, source))
            return
        self._run(transaction, Input.RECV_ACK, now, ack, source)

    def send_response(self, key: ServerTransactionKey, response: Response, now: float) -> None:
        """Send the TU's response on server transaction ``key`` (§17.2.1, §17.2.2).

        The response goes to the address the request came from (§18.2.2 with
        RFC 3581: received/rport, same local socket or connection).  Raise
        :class:`TransactionError` for an unknown (e.g. already terminated)
        transaction or a response the state does not allow.
        """
        transaction = self._servers.get(key)
        if transaction is None:
            raise TransactionError(f"no server transaction {key}")
        if (
            response.status >= 200
            and type(transaction) is NonInviteServerTransaction
            and transaction.state in _NON_INVITE_ANSWERABLE
        ):
            self._complete_non_invite(transaction, response, now)
            return
        legacy_invite = key.legacy and key.method == "INVITE" and response.status >= 200
        # Read before the run: a final response lets the transaction drop its request.
        invite = transaction.request if legacy_invite else None
        self._run(transaction, response_input(response.status, from_tu=True), now, response)
        if invite is not None:
            alias = legacy_ack_key(invite, response)
            if alias is not None and alias != key and key in self._servers:
                self._ack_aliases[alias] = key

    def _complete_non_invite(
        self, transaction: NonInviteServerTransaction, response: Response, now: float
    ) -> None:
        """Figure 8: a final response from the TU, then Completed until Timer J (§17.2.2)."""
        response_input(response.status, from_tu=True)  # a status out of range raises
        key = transaction.key
        peer = transaction.peer
        self._out.messages.append((response, peer))
        transaction.terminate()  # nothing runs in Trying/Proceeding: no timer to cancel
        del self._servers[key]
        interval = self._timer_j_interval
        if peer.reliable or not interval:
            return  # Timer J is zero over reliable transports: Terminated at once
        deadline = now + interval
        self._resting[key] = _Resting(response.seal(), peer, deadline, weakref.ref(response))
        self._timer_j.append((deadline, key))

    # -- a shell's fast path (requests answered from their bytes) ----------------

    def absorb_retransmission(self, key: ServerTransactionKey) -> bool | None:
        """Match a request that never became a :class:`Request` (§17.2.3).

        For a shell that answers a common request straight from its bytes
        (the PBX's REGISTER): True when it retransmits a request answered
        within Timer J (the final response is queued again, §17.2.2); None
        when a live server transaction has that key (the shell must take the
        ordinary path, which runs the transaction's table); False for a new
        request.
        """
        if key in self._servers:
            return None
        resting = self._resting.get(key)
        if resting is None:
            return False
        self._out.messages.append((resting.message(), resting.peer))
        return True

    def rest_final_response(
        self, key: ServerTransactionKey, response: bytes, peer: Address, now: float
    ) -> None:
        """A final response the shell sent for ``key`` itself: Completed until Timer J.

        Figure 8 without the transaction object: the request was passed to
        the TU and answered at once, so the transaction goes from Trying
        straight to Completed, where it absorbs retransmissions for 64*T1
        over UDP (§17.2.2) and ends at once over a reliable transport.
        """
        interval = self._timer_j_interval
        if peer.reliable or not interval:
            return
        deadline = now + interval
        self._resting[key] = _Resting(response, peer, deadline, _DEAD_REF)
        self._timer_j.append((deadline, key))

    def find_invite_server_transaction(self, cancel: Request) -> ServerTransactionKey | None:
        """The INVITE server transaction a CANCEL targets, if it still exists (§9.2).

        §9.2 matches the CANCEL as if its method were the INVITE's with the
        §17.2.3 rules.  None means the TU answers the CANCEL with 481.
        """
        key = server_key(cancel, method="INVITE")
        return key if isinstance(self._servers.get(key), InviteServerTransaction) else None

    # -- both sides ---------------------------------------------------------

    def send_stateless(self, message: Request | Response, dest: Address) -> None:
        """Queue a message outside any transaction (ACK for 2xx, stateless proxy, §16.11)."""
        self._out.messages.append((message, dest))

    def transport_error(self, message: Request | Response, now: float) -> None:
        """The shell failed to send ``message``; inform its transaction (§17.1.4, §17.2.4)."""
        if isinstance(message, Response):
            server = response_server_key(message)
            if server is not None and self._resting.pop(server, None) is not None:
                self._out.events.append(TransportError(server))  # Completed -> Terminated
                return
        transaction = self._owner_of(message)
        if transaction is not None:
            self._run(transaction, Input.TRANSPORT_ERROR, now)

    def _owner_of(self, message: Request | Response) -> Transaction | None:
        if isinstance(message, Request):
            key = client_key(message)
            return self._clients.get(key) if key is not None else None
        server = response_server_key(message)
        if server is not None:
            return self._servers.get(server)
        for transaction in self._servers.values():
            if transaction.sent_response(message):
                return transaction
        return None

    def terminate(self, key: TransactionKey) -> bool:
        """Destroy a transaction now, silently; return whether it existed.

        For the TU's own give-up rules that the figures leave to it: an INVITE
        client transaction stays in Proceeding until a final response, so a UAC
        whose CANCEL got no 487 within 64*T1 destroys it (§9.1), as does a
        proxy when Timer C fires (§16.8).
        """
        found = self._find(key)
        if found is None:
            if isinstance(key, ServerTransactionKey):
                return self._resting.pop(key, None) is not None
            return False
        found.terminate()
        self._reap(found)
        return True

    def state(self, key: TransactionKey) -> State | None:
        """The state of a live transaction, or None once it is terminated."""
        found = self._find(key)
        if found is None:
            resting = isinstance(key, ServerTransactionKey) and key in self._resting
            return State.COMPLETED if resting else None
        return found.state

    def _find(self, key: TransactionKey) -> Transaction | None:
        if isinstance(key, ClientTransactionKey):
            return self._clients.get(key)
        return self._servers.get(key)

    @property
    def active_transactions(self) -> int:
        """How many transactions are alive."""
        return len(self._clients) + len(self._servers) + len(self._resting)

    # -- sans-I/O plumbing --------------------------------------------------

    def messages_to_send(self) -> list[tuple[Request | Response, Address]]:
        """Everything queued for the wire since the last call, in order."""
        messages = self._out.messages
        self._out.messages = []
        return messages

    def next_event(self) -> TransactionEvent | None:
        """The next event for the TU, or None."""
        return self._out.events.popleft() if self._out.events else None

    def get_timer(self) -> float | None:
        """The earliest timer deadline, or None when no timer runs."""
        deadline = self._out.timers.next_deadline()
        if self._timer_j:
            first = self._timer_j[0][0]
            if deadline is None or first < deadline:
                return first
        return deadline

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (Timers A-M)."""
        queue, resting = self._timer_j, self._resting
        while queue and queue[0][0] <= now:
            _, done = queue.popleft()
            record = resting.get(done)
            if record is not None and record.deadline <= now:  # not a newer one
                del resting[done]  # Timer J: Completed -> Terminated
        for key, timer in self._out.timers.pop_due(now):
            found = self._find(key)
            if found is not None:
                found.fire(timer, now)
                self._reap(found)

    def _run(
        self,
        transaction: Transaction,
        stimulus: Input,
        now: float,
        message: Request | Response | None = None,
        source: Address | None = None,
    ) -> None:
        transaction.handle(stimulus, now, message, source)
        self._reap(transaction)

    def _reap(self, transaction: Transaction) -> None:
        """Destroy a transaction the instant it is Terminated (§17.1.1.2, §17.2.1)."""
        if transaction.state is not State.TERMINATED:
            return
        key = transaction.key
        if isinstance(key, ClientTransactionKey):
            self._clients.pop(key, None)
            return
        self._servers.pop(key, None)
        if key.legacy:
            for alias in [a for a, k in self._ack_aliases.items() if k == key]:
                del self._ack_aliases[alias]

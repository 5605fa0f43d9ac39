"""The transaction layer: the TU's façade over all transactions (RFC 3261 §17).

Sans-I/O in the aioquic style: every entry point takes ``now``; what must go
on the wire collects in :meth:`TransactionLayer.messages_to_send` as
``(message, address)`` pairs; what the TU must know comes out of
:meth:`TransactionLayer.next_event`; the shell calls
:meth:`TransactionLayer.handle_timer` at :meth:`TransactionLayer.get_timer`.

A transaction is dropped the moment it enters Terminated (§17.1.1.2).

Transactions whose work is done and that only wait for a timer to absorb
retransmissions leave their objects for a
:class:`~callway.sip.transaction.resting.RestingStore` record (no Python
object per record; records of one store expire in the order they came):

* a non-INVITE server transaction over UDP in Completed, until Timer J
  (64*T1, §17.2.2): its final response and where it goes, resent for each
  retransmitted request;
* an INVITE server transaction in Accepted (RFC 6026), until Timer L: where
  the TU's 2xx retransmissions go; retransmitted INVITEs are absorbed;
* an INVITE client transaction in Accepted (RFC 6026), until Timer M: every
  2xx is passed to the TU, anything else absorbed;
* an INVITE server transaction over UDP in Confirmed (its non-2xx final
  was ACKed), until Timer I (T4, §17.2.1): ACKs and INVITEs are absorbed;
* an INVITE client transaction over UDP in Completed, until Timer D
  (§17.1.1.2): its ACK and where it goes, resent for each retransmitted
  non-2xx final response (a call that was busy, cancelled or refused);
* a non-INVITE client transaction over UDP in Completed, until Timer K
  (T4, §17.1.2.2): responses are absorbed.

These shortcuts take the figures' transitions for the common case only
(RFC 3261 branches); everything else runs the tables of ``client.py`` and
``server.py``.

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

from callway.core.address import Address
from callway.sip.message import Request, Response
from callway.sip.transaction.builders import build_ack
from callway.sip.transaction.client import (
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
)
from callway.sip.transaction.events import (
    AckReceived,
    ClientTransactionKey,
    RequestReceived,
    ResponseReceived,
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
from callway.sip.transaction.records import (
    client_key_bytes,
    parsed_request,
    parsed_response,
    peer_bytes,
    peer_from,
    server_key_bytes,
    split_peer,
    with_peer,
)
from callway.sip.transaction.resting import RestingStore
from callway.sip.transaction.server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
)
from callway.sip.transaction.timers import Interval, TransactionConfig

# Where a final response from the TU ends a server transaction's work (Figures 7, 8).
_SERVER_ANSWERABLE = frozenset({State.TRYING, State.PROCEEDING})
# Where a final response ends a client transaction's work (Figures 5, 6).
_CLIENT_ANSWERABLE = frozenset({State.CALLING, State.TRYING, State.PROCEEDING})


class TransactionLayer:
    """Owns every client and server transaction of one SIP element."""

    def __init__(self, config: TransactionConfig | None = None) -> None:
        self.config = config or TransactionConfig()
        self._out = Outputs()
        self._clients: dict[ClientTransactionKey, ClientTransaction] = {}
        self._servers: dict[ServerTransactionKey, ServerTransaction] = {}
        # RFC 2543 ACKs carry the To tag of our final response (§17.2.3).
        self._ack_aliases: dict[ServerTransactionKey, ServerTransactionKey] = {}
        # Transactions that only wait for a timer (see the module docstring).
        udp_j = self.config.interval(Interval.T1_X64_OR_ZERO, reliable=False, last=None)
        udp_k = self.config.interval(Interval.T4_OR_ZERO, reliable=False, last=None)
        udp_d = self.config.interval(Interval.TIMER_D, reliable=False, last=None)
        t1_x64 = self.config.interval(Interval.T1_X64, reliable=False, last=None)
        self._resting = RestingStore(udp_j or 0.0)  # Timer J: key -> peer + response
        self._accepted_servers = RestingStore(t1_x64 or 0.0)  # Timer L: key -> peer
        self._accepted_clients = RestingStore(t1_x64 or 0.0)  # Timer M
        self._completed_clients = RestingStore(udp_k or 0.0)  # Timer K
        self._completed_invites = RestingStore(udp_d or 0.0)  # Timer D: key -> peer + ACK
        self._confirmed_servers = RestingStore(udp_k or 0.0)  # Timer I (T4, as Timer K)
        # The last key absorb_retransmission looked up, with its bytes.
        self._asked: tuple[ServerTransactionKey | None, bytes] = (None, b"")
        self._stores = (
            self._resting,
            self._accepted_servers,
            self._accepted_clients,
            self._completed_clients,
            self._completed_invites,
            self._confirmed_servers,
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
            if key is None or not self._absorb_response(key, response):
                self._out.events.append(StrayResponse(response, source))
            return
        status = response.status
        if status >= 200 and transaction.state in _CLIENT_ANSWERABLE:
            if type(transaction) is InviteClientTransaction:
                if status < 300:
                    self._accept_client(transaction, response, now)
                    return
                if status <= 699:
                    self._complete_invite_client(transaction, response, now)
                    return
            elif status <= 699:
                self._complete_client(transaction, response, now)
                return
        self._run(transaction, response_input(status, from_tu=False), now, response)

    def _accept_client(
        self, transaction: ClientTransaction, response: Response, now: float
    ) -> None:
        """Figure 5 with RFC 6026: a 2xx goes to the TU; Accepted until Timer M."""
        key = self._pass_final(transaction, response)
        self._accepted_clients.add(hash(key), client_key_bytes(key), b"", now)

    def _complete_invite_client(
        self, transaction: ClientTransaction, response: Response, now: float
    ) -> None:
        """Figure 5: a 300-699 is ACKed and goes to the TU; Completed until Timer D."""
        peer = transaction.peer
        ack = build_ack(transaction.request, response)  # §17.1.1.3
        self._out.messages.append((ack, peer))
        key = self._pass_final(transaction, response)
        if not peer.reliable and self._completed_invites.interval:  # Timer D is zero if reliable
            payload = with_peer(peer, ack.seal())
            self._completed_invites.add(hash(key), client_key_bytes(key), payload, now)

    def _complete_client(
        self, transaction: ClientTransaction, response: Response, now: float
    ) -> None:
        """Figure 6: a final response goes to the TU; Completed until Timer K (§17.1.2.2)."""
        key = self._pass_final(transaction, response)
        if not transaction.peer.reliable and self._completed_clients.interval:  # K is 0 if so
            self._completed_clients.add(hash(key), client_key_bytes(key), b"", now)

    def _pass_final(
        self, transaction: ClientTransaction, response: Response
    ) -> ClientTransactionKey:
        """Pass a final response to the TU and drop the object (its timers stop); its key."""
        key = transaction.key
        self._out.events.append(ResponseReceived(key, response))
        transaction.terminate()  # cancels Timers A and B, or E and F
        del self._clients[key]
        return key

    def _absorb_response(self, key: ClientTransactionKey, response: Response) -> bool:
        """A response to a resting client transaction: a 2xx in Accepted goes up, else absorbed."""
        key_hash, key_bytes = hash(key), client_key_bytes(key)
        if key.method != "INVITE":
            return self._completed_clients.get(key_hash, key_bytes) is not None
        if self._accepted_clients.get(key_hash, key_bytes) is not None:
            if 200 <= response.status < 300:  # RFC 6026: every 2xx goes to the TU
                self._out.events.append(ResponseReceived(key, response))
            return True
        payload = self._completed_invites.get(key_hash, key_bytes)
        if payload is None:
            return False
        if response.status >= 300:  # §17.1.1.2: a retransmitted final is ACKed again
            peer, ack = split_peer(payload)
            self._out.messages.append((parsed_request(ack), peer))
        return True

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
            if request.method == "INVITE":
                key_hash, key_bytes = hash(key), server_key_bytes(key)
                if self._accepted_servers.get(key_hash, key_bytes) is not None:
                    return  # RFC 6026 Accepted absorbs retransmitted INVITEs
                if self._confirmed_servers.get(key_hash, key_bytes) is not None:
                    return  # Confirmed absorbs them too (§17.2.1)
            else:
                payload = self._resting.get(hash(key), server_key_bytes(key))
                if payload is not None:  # §17.2.2: Completed resends the final response
                    peer, response = split_peer(payload)
                    self._out.messages.append((parsed_response(response), peer))
                    return
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
            confirmed = self._confirmed_servers
            if confirmed.count and confirmed.get(hash(key), server_key_bytes(key)) is not None:
                return  # §17.2.1: Confirmed absorbs retransmitted ACKs
            self._out.events.append(AckReceived(ack, source))
            return
        if (
            transaction.state is State.COMPLETED
            and not key.legacy
            and not transaction.peer.reliable
            and self._confirmed_servers.interval
        ):
            self._confirm(transaction, now)
            return
        self._run(transaction, Input.RECV_ACK, now, ack, source)

    def _confirm(self, transaction: ServerTransaction, now: float) -> None:
        """Figure 7: the ACK of a non-2xx final; Confirmed until Timer I (§17.2.1)."""
        key = transaction.key
        transaction.terminate()  # cancels Timers G and H
        del self._servers[key]
        self._confirmed_servers.add(hash(key), server_key_bytes(key), b"", now)

    def send_response(self, key: ServerTransactionKey, response: Response, now: float) -> None:
        """Send the TU's response on server transaction ``key`` (§17.2.1, §17.2.2).

        The response goes to the address the request came from (§18.2.2 with
        RFC 3581: received/rport, same local socket or connection).  Raise
        :class:`TransactionError` for an unknown (e.g. already terminated)
        transaction or a response the state does not allow.
        """
        transaction = self._servers.get(key)
        if transaction is None:
            self._send_accepted(key, response)
            return
        status = response.status
        if status >= 200 and transaction.state in _SERVER_ANSWERABLE:
            if type(transaction) is NonInviteServerTransaction:
                self._complete_non_invite(transaction, response, now)
                return
            if status < 300 and not key.legacy:
                self._accept_invite(transaction, response, now)
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
        if peer.reliable or not self._resting.interval:
            return  # Timer J is zero over reliable transports: Terminated at once
        self._resting.add(hash(key), server_key_bytes(key), with_peer(peer, response.seal()), now)

    def _accept_invite(
        self, transaction: ServerTransaction, response: Response, now: float
    ) -> None:
        """Figure 7 with RFC 6026: a 2xx from the TU; Accepted until Timer L."""
        key = transaction.key
        peer = transaction.peer
        self._out.messages.append((response, peer))
        transaction.terminate()  # nothing runs in Proceeding: no timer to cancel
        del self._servers[key]
        self._accepted_servers.add(hash(key), server_key_bytes(key), peer_bytes(peer), now)

    def _send_accepted(self, key: ServerTransactionKey, response: Response) -> None:
        """RFC 6026 Accepted: the TU's 2xx retransmissions go where the first one went."""
        payload = None
        if key.method == "INVITE":
            payload = self._accepted_servers.get(hash(key), server_key_bytes(key))
        if payload is None:
            raise TransactionError(f"no server transaction {key}")
        if not 200 <= response.status < 300:
            response_input(response.status, from_tu=True)  # a status out of range raises
            raise TransactionError(f"{response.status} not allowed in Accepted ({key.method})")
        self._out.messages.append((response, peer_from(payload)))

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
        key_bytes = server_key_bytes(key)
        self._asked = (key, key_bytes)  # rest_final_response usually follows
        payload = self._resting.get(hash(key), key_bytes)
        if payload is None:
            return False
        peer, response = split_peer(payload)
        self._out.messages.append((parsed_response(response), peer))
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
        if peer.reliable or not self._resting.interval:
            return
        asked, key_bytes = self._asked
        if asked is not key:
            key_bytes = server_key_bytes(key)
        self._resting.add(hash(key), key_bytes, with_peer(peer, response), now)

    def find_invite_server_transaction(self, cancel: Request) -> ServerTransactionKey | None:
        """The INVITE server transaction a CANCEL targets, if it still exists (§9.2).

        §9.2 matches the CANCEL as if its method were the INVITE's with the
        §17.2.3 rules.  None means the TU answers the CANCEL with 481.
        """
        key = server_key(cancel, method="INVITE")
        if isinstance(self._servers.get(key), InviteServerTransaction):
            return key
        key_hash, key_bytes = hash(key), server_key_bytes(key)
        for resting in (self._accepted_servers, self._confirmed_servers):
            if resting.get(key_hash, key_bytes) is not None:
                return key
        return None

    # -- both sides ---------------------------------------------------------

    def send_stateless(self, message: Request | Response, dest: Address) -> None:
        """Queue a message outside any transaction (ACK for 2xx, stateless proxy, §16.11)."""
        self._out.messages.append((message, dest))

    def transport_error(self, message: Request | Response, now: float) -> None:
        """The shell failed to send ``message``; inform its transaction (§17.1.4, §17.2.4)."""
        if isinstance(message, Request) and message.method == "ACK":
            client = client_key(message)
            if client is not None and self._completed_invites.pop(
                hash(client), client_key_bytes(client)
            ):
                self._out.events.append(TransportError(client))  # Completed -> Terminated
                return
        if isinstance(message, Response):
            server = response_server_key(message)
            if server is not None:
                server_hash, server_bytes = hash(server), server_key_bytes(server)
                if self._resting.pop(server_hash, server_bytes) is not None:
                    self._out.events.append(TransportError(server))  # Completed -> Terminated
                    return
                if self._accepted_servers.get(server_hash, server_bytes) is not None:
                    self._out.events.append(TransportError(server))  # RFC 6026: stays
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
            resting = self._resting_state(key)
            return resting is not None and resting[0].pop(hash(key), resting[1]) is not None
        found.terminate()
        self._reap(found)
        return True

    def state(self, key: TransactionKey) -> State | None:
        """The state of a live transaction, or None once it is terminated."""
        found = self._find(key)
        if found is None:
            resting = self._resting_state(key)
            return None if resting is None else resting[2]
        return found.state

    def _resting_state(self, key: TransactionKey) -> tuple[RestingStore, bytes, State] | None:
        """The store holding ``key`` as a resting record, its bytes there and its state."""
        candidates: tuple[tuple[RestingStore, State], ...]
        if isinstance(key, ClientTransactionKey):
            key_bytes = client_key_bytes(key)
            if key.method == "INVITE":
                candidates = (
                    (self._accepted_clients, State.ACCEPTED),
                    (self._completed_invites, State.COMPLETED),
                )
            else:
                candidates = ((self._completed_clients, State.COMPLETED),)
        else:
            key_bytes = server_key_bytes(key)
            if key.method == "INVITE":
                candidates = (
                    (self._accepted_servers, State.ACCEPTED),
                    (self._confirmed_servers, State.CONFIRMED),
                )
            else:
                candidates = ((self._resting, State.COMPLETED),)
        for store, state in candidates:
            if store.get(hash(key), key_bytes) is not None:
                return store, key_bytes, state
        return None

    def _find(self, key: TransactionKey) -> Transaction | None:
        if isinstance(key, ClientTransactionKey):
            return self._clients.get(key)
        return self._servers.get(key)

    @property
    def active_transactions(self) -> int:
        """How many transactions are alive."""
        return (
            len(self._clients)
            + len(self._servers)
            + self._resting.count
            + self._accepted_servers.count
            + self._accepted_clients.count
            + self._completed_clients.count
            + self._completed_invites.count
            + self._confirmed_servers.count
        )

    @property
    def resting_bytes(self) -> int:
        """Memory mapped for transactions that only wait for a timer (see the module docstring)."""
        return sum(store.mapped_bytes for store in self._stores)

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
        for store in self._stores:
            first = store.next_deadline
            if first is not None and (deadline is None or first < deadline):
                deadline = first
        return deadline

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (Timers A-M)."""
        for store in self._stores:  # Timers J, L, M, K: -> Terminated
            store.expire(now)
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

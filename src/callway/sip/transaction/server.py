"""Server transactions: RFC 3261 Figure 7 (INVITE, with RFC 6026) and Figure 8.

RFC 6026 replaces the INVITE server transaction's "2xx from TU -> Terminated"
with an Accepted state: the 2xx and its retransmissions come from the TU (the
dialog, §13.3.1.4) and are sent through the transaction, retransmitted INVITEs
are absorbed, ACKs are passed up, and Timer L ends it.  Inputs missing from a
table are absorbed (e.g. an ACK in Proceeding, a request retransmission with
nothing to resend).
"""

from __future__ import annotations

from collections.abc import Mapping

from callway.core.address import Address
from callway.sip.message import Request, Response, make_response
from callway.sip.transaction.events import AckReceived, RequestReceived, ServerTransactionKey
from callway.sip.transaction.machine import Action, Input, State, Table, Transaction, Transition
from callway.sip.transaction.timers import Timer

_S = State
_I = Input
_A = Action

INVITE_SERVER_TABLE: Table = {
    # §17.2.1: "INVITE / pass INV to TU, send 100 if TU won't in 200 ms".
    (_S.INIT, _I.RECV_REQUEST): Transition(_S.PROCEEDING, (_A.PASS_REQUEST, _A.SEND_TRYING)),
    (_S.PROCEEDING, _I.RECV_REQUEST): Transition(_S.PROCEEDING, (_A.RESEND_RESPONSE,)),
    (_S.PROCEEDING, _I.SEND_1XX): Transition(_S.PROCEEDING, (_A.SEND_RESPONSE,)),
    (_S.PROCEEDING, _I.SEND_2XX): Transition(_S.ACCEPTED, (_A.SEND_RESPONSE, _A.START_L)),
    (_S.PROCEEDING, _I.SEND_300_699): Transition(
        _S.COMPLETED, (_A.SEND_RESPONSE, _A.START_G, _A.START_H)
    ),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): Transition(_S.TERMINATED, (_A.INFORM_TRANSPORT_ERROR,)),
    (_S.COMPLETED, _I.RECV_REQUEST): Transition(_S.COMPLETED, (_A.RESEND_RESPONSE,)),
    (_S.COMPLETED, _I.TIMER_G): Transition(_S.COMPLETED, (_A.RESEND_RESPONSE, _A.DOUBLE_G)),
    (_S.COMPLETED, _I.TIMER_H): Transition(_S.TERMINATED, (_A.INFORM_TIMEOUT,)),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): Transition(_S.TERMINATED, (_A.INFORM_TRANSPORT_ERROR,)),
    (_S.COMPLETED, _I.RECV_ACK): Transition(_S.CONFIRMED, (_A.START_I,)),
    # §17.2.1: Confirmed absorbs further ACKs (and INVITEs) until Timer I.
    (_S.CONFIRMED, _I.RECV_REQUEST): Transition(_S.CONFIRMED),
    (_S.CONFIRMED, _I.RECV_ACK): Transition(_S.CONFIRMED),
    (_S.CONFIRMED, _I.TIMER_I): Transition(_S.TERMINATED),
    # RFC 6026 Accepted.  A transport error is reported and the transaction
    # stays: the TU owns the 2xx retransmissions, Timer L cleans up.
    (_S.ACCEPTED, _I.RECV_REQUEST): Transition(_S.ACCEPTED),
    (_S.ACCEPTED, _I.RECV_ACK): Transition(_S.ACCEPTED, (_A.PASS_ACK,)),
    (_S.ACCEPTED, _I.SEND_2XX): Transition(_S.ACCEPTED, (_A.SEND_RESPONSE,)),
    (_S.ACCEPTED, _I.TRANSPORT_ERROR): Transition(_S.ACCEPTED, (_A.INFORM_TRANSPORT_ERROR,)),
    (_S.ACCEPTED, _I.TIMER_L): Transition(_S.TERMINATED),
}

NON_INVITE_SERVER_TABLE: Table = {
    # §17.2.2: "Request received / pass to TU".
    (_S.INIT, _I.RECV_REQUEST): Transition(_S.TRYING, (_A.PASS_REQUEST,)),
    (_S.TRYING, _I.RECV_REQUEST): Transition(_S.TRYING),
    (_S.TRYING, _I.SEND_1XX): Transition(_S.PROCEEDING, (_A.SEND_RESPONSE,)),
    (_S.TRYING, _I.SEND_2XX): Transition(_S.COMPLETED, (_A.SEND_RESPONSE, _A.START_J)),
    (_S.TRYING, _I.SEND_300_699): Transition(_S.COMPLETED, (_A.SEND_RESPONSE, _A.START_J)),
    (_S.PROCEEDING, _I.RECV_REQUEST): Transition(_S.PROCEEDING, (_A.RESEND_RESPONSE,)),
    (_S.PROCEEDING, _I.SEND_1XX): Transition(_S.PROCEEDING, (_A.SEND_RESPONSE,)),
    (_S.PROCEEDING, _I.SEND_2XX): Transition(_S.COMPLETED, (_A.SEND_RESPONSE, _A.START_J)),
    (_S.PROCEEDING, _I.SEND_300_699): Transition(_S.COMPLETED, (_A.SEND_RESPONSE, _A.START_J)),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): Transition(_S.TERMINATED, (_A.INFORM_TRANSPORT_ERROR,)),
    (_S.COMPLETED, _I.RECV_REQUEST): Transition(_S.COMPLETED, (_A.RESEND_RESPONSE,)),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): Transition(_S.TERMINATED, (_A.INFORM_TRANSPORT_ERROR,)),
    (_S.COMPLETED, _I.TIMER_J): Transition(_S.TERMINATED),
}

_INVITE_SERVER_TIMERS: Mapping[State, frozenset[Timer]] = {
    _S.COMPLETED: frozenset({Timer.G, Timer.H}),
    _S.CONFIRMED: frozenset({Timer.I}),
    _S.ACCEPTED: frozenset({Timer.L}),
}

_NON_INVITE_SERVER_TIMERS: Mapping[State, frozenset[Timer]] = {
    _S.COMPLETED: frozenset({Timer.J}),
}


class ServerTransaction(Transaction):
    """Receives a request from ``peer`` and sends the TU's responses back (§17.2)."""

    __slots__ = ()

    key: ServerTransactionKey

    def _perform(
        self, action: Action, message: Request | Response | None, source: Address | None
    ) -> None:
        if action is Action.PASS_REQUEST:
            self._emit(RequestReceived(self.key, self.request, self.peer))
        elif action is Action.SEND_RESPONSE:
            assert isinstance(message, Response)
            self.last_response = message
            self._send(message)
        elif action is Action.RESEND_RESPONSE:
            response = self._response_to_resend()
            if response is not None:
                self._send(response)
        elif action is Action.SEND_TRYING:
            self._send_trying()
        elif action is Action.PASS_ACK:
            assert isinstance(message, Request)
            self._emit(AckReceived(message, source or self.peer))
        else:  # pragma: no cover - the tables use no other action
            raise NotImplementedError(action)

    def _send_trying(self) -> None:
        """§17.2.1 and §8.2.6.1: a 100 without To tag, Timestamp copied."""
        if not self.config.send_trying:
            return
        timestamp = self.request.get("timestamp")
        extra = [("Timestamp", timestamp)] if timestamp is not None else []
        self.last_response = make_response(self.request, 100, headers=extra)
        self._send(self.last_response)


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 Figure 7 with RFC 6026's Accepted state and Timer L."""

    __slots__ = ()

    TABLE = INVITE_SERVER_TABLE
    STATE_TIMERS = _INVITE_SERVER_TIMERS


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 Figure 8."""

    __slots__ = ()

    TABLE = NON_INVITE_SERVER_TABLE
    STATE_TIMERS = _NON_INVITE_SERVER_TIMERS

"""Client transactions: RFC 3261 Figure 5 (INVITE, with RFC 6026) and Figure 6.

The tables read like the figures: ``(state, input): Transition(new state,
actions)``.  Inputs missing from a table are absorbed (e.g. a 1xx in
Completed, a retransmitted 2xx to a non-INVITE).
"""

from __future__ import annotations

from collections.abc import Mapping

from callway.core.address import Address
from callway.sip.message import Request, Response
from callway.sip.transaction.builders import build_ack
from callway.sip.transaction.events import ClientTransactionKey, ResponseReceived
from callway.sip.transaction.machine import (
    Action,
    Input,
    Outputs,
    State,
    Table,
    Transaction,
    Transition,
)
from callway.sip.transaction.timers import Timer, TransactionConfig

_S = State
_I = Input
_A = Action

INVITE_CLIENT_TABLE: Table = {
    # §17.1.1.2: "INVITE from TU / INVITE sent", Timer A (unreliable) and B started.
    (_S.INIT, _I.SEND_REQUEST): Transition(_S.CALLING, (_A.SEND_REQUEST, _A.START_A, _A.START_B)),
    (_S.CALLING, _I.TIMER_A): Transition(_S.CALLING, (_A.SEND_REQUEST, _A.DOUBLE_A)),
    (_S.CALLING, _I.TIMER_B): Transition(_S.TERMINATED, (_A.INFORM_TIMEOUT,)),
    (_S.CALLING, _I.TRANSPORT_ERROR): Transition(_S.TERMINATED, (_A.INFORM_TRANSPORT_ERROR,)),
    (_S.CALLING, _I.RECV_1XX): Transition(_S.PROCEEDING, (_A.PASS_RESPONSE,)),
    (_S.CALLING, _I.RECV_2XX): Transition(_S.ACCEPTED, (_A.PASS_RESPONSE, _A.START_M)),
    (_S.CALLING, _I.RECV_300_699): Transition(
        _S.COMPLETED, (_A.SEND_ACK, _A.PASS_RESPONSE, _A.START_D)
    ),
    (_S.PROCEEDING, _I.RECV_1XX): Transition(_S.PROCEEDING, (_A.PASS_RESPONSE,)),
    (_S.PROCEEDING, _I.RECV_2XX): Transition(_S.ACCEPTED, (_A.PASS_RESPONSE, _A.START_M)),
    (_S.PROCEEDING, _I.RECV_300_699): Transition(
        _S.COMPLETED, (_A.SEND_ACK, _A.PASS_RESPONSE, _A.START_D)
    ),
    # RFC 6026: every 2xx goes to the TU (retransmissions and other forks).
    (_S.ACCEPTED, _I.RECV_2XX): Transition(_S.ACCEPTED, (_A.PASS_RESPONSE,)),
    (_S.ACCEPTED, _I.TIMER_M): Transition(_S.TERMINATED),
    # §17.1.1.2: a retransmitted final is ACKed again, not passed up.
    (_S.COMPLETED, _I.RECV_300_699): Transition(_S.COMPLETED, (_A.SEND_ACK,)),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): Transition(_S.TERMINATED, (_A.INFORM_TRANSPORT_ERROR,)),
    (_S.COMPLETED, _I.TIMER_D): Transition(_S.TERMINATED),
}

NON_INVITE_CLIENT_TABLE: Table = {
    # §17.1.2.2: "Request from TU / send request", Timer E (unreliable) and F.
    (_S.INIT, _I.SEND_REQUEST): Transition(_S.TRYING, (_A.SEND_REQUEST, _A.START_E, _A.START_F)),
    (_S.TRYING, _I.TIMER_E): Transition(_S.TRYING, (_A.SEND_REQUEST, _A.DOUBLE_E)),
    (_S.TRYING, _I.TIMER_F): Transition(_S.TERMINATED, (_A.INFORM_TIMEOUT,)),
    (_S.TRYING, _I.TRANSPORT_ERROR): Transition(_S.TERMINATED, (_A.INFORM_TRANSPORT_ERROR,)),
    (_S.TRYING, _I.RECV_1XX): Transition(_S.PROCEEDING, (_A.PASS_RESPONSE,)),
    (_S.TRYING, _I.RECV_2XX): Transition(_S.COMPLETED, (_A.PASS_RESPONSE, _A.START_K)),
    (_S.TRYING, _I.RECV_300_699): Transition(_S.COMPLETED, (_A.PASS_RESPONSE, _A.START_K)),
    # §17.1.2.2: in Proceeding, Timer E is reset to T2 each time it fires.
    (_S.PROCEEDING, _I.TIMER_E): Transition(_S.PROCEEDING, (_A.SEND_REQUEST, _A.RESET_E_T2)),
    (_S.PROCEEDING, _I.TIMER_F): Transition(_S.TERMINATED, (_A.INFORM_TIMEOUT,)),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): Transition(_S.TERMINATED, (_A.INFORM_TRANSPORT_ERROR,)),
    (_S.PROCEEDING, _I.RECV_1XX): Transition(_S.PROCEEDING, (_A.PASS_RESPONSE,)),
    (_S.PROCEEDING, _I.RECV_2XX): Transition(_S.COMPLETED, (_A.PASS_RESPONSE, _A.START_K)),
    (_S.PROCEEDING, _I.RECV_300_699): Transition(_S.COMPLETED, (_A.PASS_RESPONSE, _A.START_K)),
    (_S.COMPLETED, _I.TIMER_K): Transition(_S.TERMINATED),
}

_INVITE_CLIENT_TIMERS: Mapping[State, frozenset[Timer]] = {
    _S.CALLING: frozenset({Timer.A, Timer.B}),
    _S.ACCEPTED: frozenset({Timer.M}),
    _S.COMPLETED: frozenset({Timer.D}),
}

_NON_INVITE_CLIENT_TIMERS: Mapping[State, frozenset[Timer]] = {
    _S.TRYING: frozenset({Timer.E, Timer.F}),
    _S.PROCEEDING: frozenset({Timer.E, Timer.F}),
    _S.COMPLETED: frozenset({Timer.K}),
}


class ClientTransaction(Transaction):
    """Sends a request to ``peer`` and reports its responses (§17.1)."""

    __slots__ = ("_ack",)

    key: ClientTransactionKey

    def __init__(
        self,
        key: ClientTransactionKey,
        request: Request,
        peer: Address,
        config: TransactionConfig,
        out: Outputs,
    ) -> None:
        super().__init__(key, request, peer, config, out)
        self._ack: Request | None = None

    def _perform(
        self, action: Action, message: Request | Response | None, source: Address | None
    ) -> None:
        if action is Action.SEND_REQUEST:
            request = self.request
            request.seal()  # retransmissions (Timers A, E) reuse one serialisation
            self._send(request)
        elif action is Action.PASS_RESPONSE:
            assert isinstance(message, Response)
            self.last_response = message
            self._emit(ResponseReceived(self.key, message))
        elif action is Action.SEND_ACK:
            assert isinstance(message, Response)
            self._send_ack(message)
        else:  # pragma: no cover - the tables use no other action
            raise NotImplementedError(action)

    def _send_ack(self, response: Response) -> None:
        """§17.1.1.3: the ACK goes where the INVITE went; retransmits reuse it."""
        if self._ack is None:
            self._ack = build_ack(self.request, response)
        self._send(self._ack)


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 Figure 5 with RFC 6026's Accepted state and Timer M."""

    __slots__ = ()

    TABLE = INVITE_CLIENT_TABLE
    STATE_TIMERS = _INVITE_CLIENT_TIMERS


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 Figure 6."""

    __slots__ = ()

    TABLE = NON_INVITE_CLIENT_TABLE
    STATE_TIMERS = _NON_INVITE_CLIENT_TIMERS

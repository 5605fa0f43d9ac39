"""The four transaction tables as data, and Hypothesis over every (state, input).

In the h2 style (``tests/test_state_machines.py``): structural checks on the
tables themselves, then random input sequences that must always land where the
table says, never leave a timer running that the state does not own, and
refuse TU inputs the table lacks without changing anything.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callway.core.address import Address
from callway.sip.message import Request, Response
from callway.sip.transaction import (
    ClientTransactionKey,
    RequestReceived,
    ResponseReceived,
    ServerTransactionKey,
    TransactionConfig,
    TransactionError,
    TransactionEvent,
    TransactionTimeout,
    build_ack,
)
from callway.sip.transaction.client import InviteClientTransaction, NonInviteClientTransaction
from callway.sip.transaction.machine import (
    TIMER_ACTIONS,
    TIMER_INPUTS,
    Input,
    Outputs,
    State,
    Transaction,
)
from callway.sip.transaction.server import InviteServerTransaction, NonInviteServerTransaction
from callway.sip.transaction.timers import Timer
from tests.unit.sip.transaction.factories import Pair, drain, make_request, respond

KINDS: list[type[Transaction]] = [
    InviteClientTransaction,
    NonInviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
]
TIMER_OF_INPUT = {value: timer for timer, value in TIMER_INPUTS.items()}
STATUS = {
    Input.SEND_1XX: 180,
    Input.SEND_2XX: 200,
    Input.SEND_300_699: 486,
    Input.RECV_1XX: 183,
    Input.RECV_2XX: 200,
    Input.RECV_300_699: 404,
}


def reachable(kind: type[Transaction]) -> set[State]:
    seen, todo = {State.INIT}, [State.INIT]
    while todo:
        state = todo.pop()
        for (src, _), row in kind.TABLE.items():
            if src is state and row.state not in seen:
                seen.add(row.state)
                todo.append(row.state)
    return seen


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_terminated_is_final_and_reachable_from_everywhere(kind: type[Transaction]) -> None:
    assert not [key for key in kind.TABLE if key[0] is State.TERMINATED]
    states = reachable(kind)
    assert State.TERMINATED in states
    for state in states - {State.TERMINATED}:
        assert any(src is state and row.state is not state for (src, _), row in kind.TABLE.items())


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_rows_only_use_timers_their_states_own(kind: type[Transaction]) -> None:
    for (state, stimulus), row in kind.TABLE.items():
        for action in row.actions:
            if action in TIMER_ACTIONS:
                timer = TIMER_ACTIONS[action][0]
                assert timer in kind.STATE_TIMERS.get(row.state, ()), (state, stimulus, action)
        if stimulus in TIMER_OF_INPUT:
            assert TIMER_OF_INPUT[stimulus] in kind.STATE_TIMERS.get(state, ())


def test_timer_sets_match_rfc_figures() -> None:
    timers = {k.__name__: set().union(*k.STATE_TIMERS.values()) for k in KINDS}
    assert timers == {
        "InviteClientTransaction": {Timer.A, Timer.B, Timer.D, Timer.M},
        "NonInviteClientTransaction": {Timer.E, Timer.F, Timer.K},
        "InviteServerTransaction": {Timer.G, Timer.H, Timer.I, Timer.L},
        "NonInviteServerTransaction": {Timer.J},
    }


def message_for(stimulus: Input, request: Request) -> Request | Response | None:
    if stimulus in STATUS:
        return respond(request, STATUS[stimulus])
    if stimulus is Input.RECV_REQUEST:
        return request
    if stimulus is Input.RECV_ACK:
        return build_ack(request, respond(request, 486))
    return None


def new_transaction(kind: type[Transaction], transport: str) -> tuple[Transaction, Outputs]:
    method = "INVITE" if kind.__name__.startswith("Invite") else "OPTIONS"
    request = make_request(method, transport=transport.upper())
    key: ClientTransactionKey | ServerTransactionKey
    if issubclass(kind, (InviteClientTransaction, NonInviteClientTransaction)):
        key = ClientTransactionKey(request.via.branch or "", method)
    else:
        key = ServerTransactionKey(request.via.branch or "", ("192.0.2.10", 5060), method)
    out = Outputs()
    peer = Address(transport, "192.0.2.20", 5060)
    return kind(key, request, peer, TransactionConfig(), out), out


@settings(max_examples=300)
@given(
    kind=st.sampled_from(KINDS),
    transport=st.sampled_from(["udp", "tcp"]),
    inputs=st.lists(st.sampled_from(list(Input)), max_size=25),
)
def test_random_inputs_follow_the_table(
    kind: type[Transaction], transport: str, inputs: list[Input]
) -> None:
    transaction, out = new_transaction(kind, transport)
    now = 0.0
    for stimulus in inputs:
        now += 0.25
        before = (transaction.state, len(out.messages), len(out.events))
        row = kind.TABLE.get((transaction.state, stimulus))
        message = message_for(stimulus, transaction.request)
        if row is None and stimulus.name.startswith("SEND_"):
            with pytest.raises(TransactionError):
                transaction.handle(stimulus, now, message)
            assert (transaction.state, len(out.messages), len(out.events)) == before
            continue
        transaction.handle(stimulus, now, message, transaction.peer)
        if row is None:
            assert (transaction.state, len(out.messages), len(out.events)) == before
            continue
        if transport == "udp":
            assert transaction.state is row.state
        else:  # a zero-interval timer (D, I, J, K) may have ended it at once
            assert transaction.state in (row.state, State.TERMINATED)
        owned = kind.STATE_TIMERS.get(transaction.state, frozenset())
        running = {timer for timer in Timer if (transaction.key, timer) in out.timers}
        assert running <= owned
        if transport == "tcp":
            assert not running & {Timer.A, Timer.E, Timer.G}  # no retransmissions


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["INVITE", "OPTIONS"]),
    losses=st.lists(st.booleans(), max_size=40),
)
def test_any_loss_pattern_ends_cleanly(method: str, losses: list[bool]) -> None:
    """Whatever is lost: one final or one timeout for the UAC, nothing left behind."""
    pair = Pair()
    pattern = iter(losses)
    pair.net.drop_next(len(losses), lambda _: next(pattern, False))
    key = pair.client.send_request(pair.request(method), pair.server_addr, pair.now)
    pair.flush()
    server_events: list[TransactionEvent] = []
    for _ in itertools.count():
        for event in drain(pair.server):
            server_events.append(event)
            if isinstance(event, RequestReceived):
                status = 486 if method == "INVITE" else 200
                pair.server.send_response(event.key, respond(event.request, status), pair.now)
        pair.flush()
        if pair.next_deadline() is None:
            break
        pair.advance(1.0)
    client_events = drain(pair.client)
    finals = [
        e for e in client_events if isinstance(e, ResponseReceived) and e.response.status >= 200
    ]
    timeouts = [e for e in client_events if isinstance(e, TransactionTimeout)]
    assert len(finals) + len(timeouts) <= 1
    if not finals and not timeouts:
        # An INVITE that got its 100 waits in Proceeding for the TU (no Timer B),
        # which happens only when every copy of the final was lost.
        assert method == "INVITE" and TransactionTimeout in map(type, server_events)
        assert pair.client.terminate(key)
    assert sum(isinstance(e, RequestReceived) for e in server_events) <= 1
    assert pair.client.active_transactions == 0 and pair.server.active_transactions == 0

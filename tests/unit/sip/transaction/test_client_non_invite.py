"""Non-INVITE client transaction: RFC 3261 Figure 6 / §17.1.2."""

from __future__ import annotations

import pytest

from callway.sip.message import Request
from callway.sip.transaction import (
    ClientTransactionKey,
    ResponseReceived,
    State,
    TransactionLayer,
    TransactionTimeout,
    build_cancel,
)
from tests.helpers.clock import ManualClock
from tests.unit.sip.transaction.factories import (
    drain,
    make_request,
    respond,
    run_timers,
    statuses,
    uas,
)


def start(
    method: str = "OPTIONS", transport: str = "udp"
) -> tuple[TransactionLayer, ManualClock, Request, ClientTransactionKey]:
    layer, clock = TransactionLayer(), ManualClock()
    request = make_request(method, transport=transport.upper())
    key = layer.send_request(request, uas(transport), clock.now)
    assert key == ClientTransactionKey(request.via.branch or "", method)
    assert layer.messages_to_send() == [(request, uas(transport))]
    assert layer.state(key) is State.TRYING
    return layer, clock, request, key


def test_timer_e_doubles_up_to_t2_until_timer_f() -> None:
    """§17.1.2.2: E = T1, 2T1, 4T1, then T2 (4 s) each time; F = 64*T1."""
    layer, clock, request, key = start()
    ticks = run_timers(layer, clock, clock.now + 100)
    retransmits = [tick.at for tick in ticks if tick.sent]
    assert retransmits == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(tick.sent == [request] for tick in ticks if tick.sent)
    assert (ticks[-1].at, ticks[-1].events) == (32.0, [TransactionTimeout(key)])
    assert layer.active_transactions == 0 and layer.get_timer() is None


def test_timer_e_is_t2_in_proceeding() -> None:
    """§17.1.2.2: once a provisional arrived, Timer E is reset to T2 each time it fires."""
    layer, clock, request, key = start("REGISTER")
    run_timers(layer, clock, clock.now + 0.75)  # one retransmission at 0.5, E now 1.0
    layer.receive_response(respond(request, 100), uas(), clock.now)
    assert layer.state(key) is State.PROCEEDING
    ticks = run_timers(layer, clock, clock.now + 100)
    retransmits = [tick.at for tick in ticks if tick.sent]
    assert retransmits == [0.75, 4.75, 8.75, 12.75, 16.75, 20.75, 24.75, 28.75]
    assert (ticks[-1].at + 0.75, ticks[-1].events) == (32.0, [TransactionTimeout(key)])


@pytest.mark.parametrize("status", [200, 404, 503])
def test_final_response_completes_and_timer_k_ends_it(status: int) -> None:
    layer, clock, request, key = start()
    final = respond(request, status)
    layer.receive_response(final, uas(), clock.advance(1.0))
    assert drain(layer) == [ResponseReceived(key, final)]
    assert layer.state(key) is State.COMPLETED
    # Retransmitted finals are absorbed during Timer K; nothing is sent (no ACK).
    layer.receive_response(respond(request, status), uas(), clock.advance(1.0))
    assert drain(layer) == [] and layer.messages_to_send() == []
    ticks = run_timers(layer, clock, clock.now + 100)
    assert [tick.at for tick in ticks] == [5.0 - 1.0]  # Timer K = T4 from the final
    assert layer.active_transactions == 0


def test_provisionals_then_final_are_passed_up_once_each() -> None:
    layer, clock, request, _key = start("BYE")
    for status in (100, 180, 200, 200, 180):
        layer.receive_response(respond(request, status), uas(), clock.now)
    assert statuses(drain(layer)) == [100, 180, 200]


def test_reliable_transport_no_timer_e_and_timer_k_zero() -> None:
    layer, clock, request, _key = start("OPTIONS", "tcp")
    assert layer.get_timer() == clock.now + 32.0  # only Timer F
    layer.receive_response(respond(request, 200), uas("tcp"), clock.advance(2))
    assert statuses(drain(layer)) == [200]
    assert layer.active_transactions == 0 and layer.get_timer() is None


def test_reliable_timer_f_timeout() -> None:
    layer, clock, _request, key = start("MESSAGE", "tcp")
    ticks = run_timers(layer, clock, clock.now + 100)
    assert [(t.at, t.sent, t.events) for t in ticks] == [(32.0, [], [TransactionTimeout(key)])]


def test_cancel_is_its_own_non_invite_transaction() -> None:
    layer, clock = TransactionLayer(), ManualClock()
    invite = make_request("INVITE")
    invite_key = layer.send_request(invite, uas(), clock.now)
    cancel = build_cancel(invite)
    cancel_key = layer.send_request(cancel, uas(), clock.now)
    assert cancel_key == ClientTransactionKey(invite_key.branch, "CANCEL")
    assert layer.state(cancel_key) is State.TRYING
    ok = respond(cancel, 200)
    layer.receive_response(ok, uas(), clock.now)
    assert drain(layer) == [ResponseReceived(cancel_key, ok)]
    assert layer.state(cancel_key) is State.COMPLETED
    assert layer.state(invite_key) is State.CALLING

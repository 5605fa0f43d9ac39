"""Non-INVITE server transaction: RFC 3261 Figure 8 / §17.2.2."""

from __future__ import annotations

import pytest

from callway.sip.message import Request, Response
from callway.sip.transaction import (
    RequestReceived,
    ServerTransactionKey,
    State,
    TransactionError,
    TransactionLayer,
)
from tests.helpers.clock import ManualClock
from tests.unit.sip.transaction.factories import (
    drain,
    make_request,
    respond,
    run_timers,
    uac,
    wire_copy,
)


def start(
    method: str = "OPTIONS", transport: str = "udp"
) -> tuple[TransactionLayer, ManualClock, Request, ServerTransactionKey]:
    layer, clock = TransactionLayer(), ManualClock()
    request = make_request(method, transport=transport.upper())
    layer.receive_request(request, uac(transport), clock.now)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived) and event.request is request
    assert event.key == ServerTransactionKey(request.via.branch or "", ("192.0.2.10", 5060), method)
    assert layer.messages_to_send() == []  # no automatic 100 for non-INVITE
    assert layer.state(event.key) is State.TRYING
    return layer, clock, request, event.key


def sent(layer: TransactionLayer) -> list[Request | Response]:
    return [message for message, _ in layer.messages_to_send()]


def test_retransmission_in_trying_is_absorbed() -> None:
    layer, clock, request, _key = start()
    layer.receive_request(wire_copy(request), uac(), clock.advance(0.5))
    assert sent(layer) == [] and drain(layer) == []


def test_retransmission_in_proceeding_resends_the_last_provisional() -> None:
    layer, clock, request, key = start("REGISTER")
    trying = respond(request, 100)
    layer.send_response(key, trying, clock.now)
    assert sent(layer) == [trying] and layer.state(key) is State.PROCEEDING
    layer.receive_request(wire_copy(request), uac(), clock.advance(0.5))
    assert sent(layer) == [trying] and drain(layer) == []


@pytest.mark.parametrize("status", [200, 401, 500])
def test_final_resent_for_retransmissions_until_timer_j(status: int) -> None:
    layer, clock, request, key = start()
    final = respond(request, status)
    layer.send_response(key, final, clock.now)
    assert sent(layer) == [final] and layer.state(key) is State.COMPLETED
    for _ in range(3):
        layer.receive_request(wire_copy(request), uac(), clock.advance(1))
        [(again, dest)] = layer.messages_to_send()
        assert again.to_bytes() == final.to_bytes() and dest == uac()  # the same bytes
    assert drain(layer) == []
    with pytest.raises(TransactionError):
        layer.send_response(key, respond(request, 200), clock.now)
    ticks = run_timers(layer, clock, clock.now + 100)
    assert [(t.at, t.sent, t.events) for t in ticks] == [(32.0 - 3, [], [])]  # Timer J
    assert layer.active_transactions == 0 and layer.get_timer() is None


def test_reliable_timer_j_is_zero() -> None:
    layer, clock, request, key = start("BYE", "tcp")
    layer.send_response(key, respond(request, 200), clock.now)
    assert len(sent(layer)) == 1
    assert layer.active_transactions == 0 and layer.get_timer() is None


def test_provisionals_then_final() -> None:
    layer, clock, request, key = start("SUBSCRIBE")
    for status in (100, 183, 202):
        layer.send_response(key, respond(request, status), clock.now)
    assert [m.status for m in sent(layer) if isinstance(m, Response)] == [100, 183, 202]
    assert layer.state(key) is State.COMPLETED


def test_bad_status_is_refused() -> None:
    layer, clock, request, key = start()
    bad = respond(request, 200)
    bad.status = 99
    with pytest.raises(TransactionError):
        layer.send_response(key, bad, clock.now)
    assert layer.state(key) is State.TRYING

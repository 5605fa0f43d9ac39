"""INVITE client transaction: RFC 3261 Figure 5 / §17.1.1 with RFC 6026."""

from __future__ import annotations

import pytest

from callway.sip.message import Request
from callway.sip.transaction import (
    ClientTransactionKey,
    ResponseReceived,
    State,
    StrayResponse,
    TransactionConfig,
    TransactionLayer,
    TransactionTimeout,
)
from tests.helpers.clock import ManualClock
from tests.unit.sip.transaction.factories import (
    T1,
    drain,
    make_request,
    respond,
    responses,
    run_timers,
    statuses,
    uas,
)


def start(transport: str = "udp") -> tuple[TransactionLayer, ManualClock, Request]:
    layer, clock = TransactionLayer(), ManualClock()
    invite = make_request("INVITE", transport=transport.upper())
    key = layer.send_request(invite, uas(transport), clock.now)
    assert layer.messages_to_send() == [(invite, uas(transport))]
    assert layer.state(key) is State.CALLING
    return layer, clock, invite


def test_timer_a_doubles_without_bound_until_timer_b() -> None:
    """§17.1.1.2: A = T1, 2T1, 4T1 ... (no T2 cap); B = 64*T1 ends it with a timeout."""
    layer, clock, invite = start()
    ticks = run_timers(layer, clock, clock.now + 100)
    retransmits = [tick.at for tick in ticks if tick.sent]
    assert retransmits == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(tick.sent == [invite] for tick in ticks if tick.sent)
    assert ticks[-1].at == 64 * T1
    assert ticks[-1].events == [TransactionTimeout(invite_key(invite))]
    assert layer.active_transactions == 0
    assert layer.get_timer() is None


def invite_key(invite: Request) -> ClientTransactionKey:
    return ClientTransactionKey(invite.via.branch or "", "INVITE")


def test_provisional_stops_retransmissions_and_timer_b() -> None:
    layer, clock, invite = start()
    ringing = respond(invite, 180)
    layer.receive_response(ringing, uas(), clock.advance(0.2))
    assert drain(layer) == [ResponseReceived(invite_key(invite), ringing)]
    assert layer.get_timer() is None  # Proceeding runs no timer: the TU cancels or waits
    assert layer.state(invite_key(invite)) is State.PROCEEDING
    assert run_timers(layer, clock, clock.now + 200) == []


def test_every_provisional_is_passed_up() -> None:
    layer, clock, invite = start()
    for status in (100, 180, 183, 180):
        layer.receive_response(respond(invite, status), uas(), clock.now)
    assert statuses(drain(layer)) == [100, 180, 183, 180]


@pytest.mark.parametrize("first", [None, 180])
def test_non_2xx_final_is_acked_and_absorbed_until_timer_d(first: int | None) -> None:
    layer, clock, invite = start()
    if first:
        layer.receive_response(respond(invite, first), uas(), clock.now)
    busy = respond(invite, 486)
    layer.receive_response(busy, uas(), clock.advance(1.0))
    [(ack, dest)] = layer.messages_to_send()
    assert isinstance(ack, Request) and ack.method == "ACK" and dest == uas()
    assert drain(layer)[-1] == ResponseReceived(invite_key(invite), busy)
    assert layer.state(invite_key(invite)) is State.COMPLETED

    # A retransmitted 486 is ACKed again with the same ACK and not passed up.
    layer.receive_response(respond(invite, 486), uas(), clock.advance(10))
    [(again, dest)] = layer.messages_to_send()
    assert again.to_bytes() == ack.to_bytes() and dest == uas()
    assert drain(layer) == []
    # Provisional or 2xx responses in Completed are absorbed.
    layer.receive_response(respond(invite, 180), uas(), clock.now)
    assert drain(layer) == [] and layer.messages_to_send() == []

    ticks = run_timers(layer, clock, clock.now + 100)
    assert [tick.at for tick in ticks] == [32.0 - 10]  # Timer D = 32 s from the 486
    assert ticks[0].events == [] and ticks[0].sent == []
    assert layer.active_transactions == 0


def test_ack_for_non_2xx_follows_section_17_1_1_3() -> None:
    layer, clock, _ = start()
    invite = make_request("INVITE", routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    invite.add("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy")
    layer.send_request(invite, uas(), clock.now)
    layer.messages_to_send()
    busy = respond(invite, 486, to_tag="xyz")
    layer.receive_response(busy, uas(), clock.now)
    [(ack, _)] = layer.messages_to_send()
    assert isinstance(ack, Request)
    assert ack.start_line() == "ACK sip:bob@example.com SIP/2.0"
    assert ack.get_all("via") == [invite.get_all("via")[0]]
    assert ack.get("to") == busy.get("to") and ack.to.tag == "xyz"
    assert ack.get("from") == invite.get("from")
    assert ack.call_id == invite.call_id
    assert str(ack.cseq) == "1 ACK"
    assert ack.get_all("route") == invite.get_all("route")
    assert ack.body == b""


def test_2xx_moves_to_accepted_and_every_2xx_is_passed_up() -> None:
    """RFC 6026: the 2xx, its retransmissions and other forks' 2xx all reach the TU."""
    layer, clock, invite = start()
    key = invite_key(invite)
    ok = respond(invite, 200, to_tag="fork1")
    layer.receive_response(ok, uas(), clock.advance(1.0))
    assert layer.state(key) is State.ACCEPTED
    assert layer.messages_to_send() == []  # the ACK for 2xx is the TU's (§13.2.2.4)
    for tag in ("fork1", "fork1", "fork2"):
        layer.receive_response(respond(invite, 200, to_tag=tag), uas(), clock.advance(0.5))
    events = drain(layer)
    assert [r.to.tag for r in responses(events)] == ["fork1", "fork1", "fork1", "fork2"]
    # Non-2xx in Accepted is absorbed.
    layer.receive_response(respond(invite, 486), uas(), clock.now)
    assert drain(layer) == [] and layer.messages_to_send() == []

    ticks = run_timers(layer, clock, clock.now + 100)
    assert [tick.at for tick in ticks] == [32.0 - 1.5]  # Timer M = 64*T1 from the first 2xx
    assert layer.active_transactions == 0


def test_2xx_after_provisional() -> None:
    layer, clock, invite = start()
    layer.receive_response(respond(invite, 180), uas(), clock.now)
    layer.receive_response(respond(invite, 200), uas(), clock.now)
    assert statuses(drain(layer)) == [180, 200]
    assert layer.state(invite_key(invite)) is State.ACCEPTED


def test_reliable_transport_never_retransmits_and_timer_d_is_zero() -> None:
    layer, clock, invite = start("tcp")
    ticks = run_timers(layer, clock, clock.now + 31.9)
    assert ticks == []  # no Timer A over TCP
    assert layer.get_timer() == clock.now + 0.1  # Timer B still runs

    busy = respond(invite, 603)
    layer.receive_response(busy, uas("tcp"), clock.now)
    [(ack, _)] = layer.messages_to_send()
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert drain(layer) == [ResponseReceived(invite_key(invite), busy)]
    assert layer.active_transactions == 0  # Timer D = 0: terminated at once
    assert layer.get_timer() is None


def test_reliable_timer_b_timeout() -> None:
    layer, clock, invite = start("tls")
    ticks = run_timers(layer, clock, clock.now + 100)
    assert [(t.at, t.events) for t in ticks] == [(32.0, [TransactionTimeout(invite_key(invite))])]


def test_custom_t1_scales_every_timer() -> None:
    layer, clock = TransactionLayer(TransactionConfig(t1=0.25, t2=2.0)), ManualClock()
    layer.send_request(make_request(), uas(), clock.now)
    layer.messages_to_send()
    ticks = run_timers(layer, clock, clock.now + 100)
    assert [t.at for t in ticks] == [0.25, 0.75, 1.75, 3.75, 7.75, 15.75, 16.0]


def test_response_with_other_method_does_not_match() -> None:
    """§17.1.3: the CSeq method must match (a CANCEL's 200 is not the INVITE's)."""
    layer, clock, invite = start()
    ok = respond(invite, 200)
    ok.set("CSeq", "1 CANCEL")
    layer.receive_response(ok, uas(), clock.now)
    [event] = drain(layer)
    assert event == StrayResponse(ok, uas())
    assert layer.state(invite_key(invite)) is State.CALLING

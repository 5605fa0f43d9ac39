"""INVITE server transaction: RFC 3261 Figure 7 / §17.2.1 with RFC 6026."""

from __future__ import annotations

import pytest

from callway.core.address import Address
from callway.sip.message import Request, Response
from callway.sip.transaction import (
    AckReceived,
    RequestReceived,
    ServerTransactionKey,
    State,
    TransactionConfig,
    TransactionError,
    TransactionLayer,
    TransactionTimeout,
    build_ack,
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

SOURCE = Address("udp", "198.51.100.7", 40123, local=("192.0.2.20", 5060), conn=None)


def start(
    transport: str = "udp", config: TransactionConfig | None = None
) -> tuple[TransactionLayer, ManualClock, Request, ServerTransactionKey]:
    layer, clock = TransactionLayer(config), ManualClock()
    invite = make_request("INVITE", transport=transport.upper())
    source = uac(transport)
    layer.receive_request(invite, source, clock.now)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    assert event.request is invite and event.source == source
    assert layer.state(event.key) is State.PROCEEDING
    return layer, clock, invite, event.key


def sent(layer: TransactionLayer) -> list[Request | Response]:
    return [message for message, _ in layer.messages_to_send()]


def status_of(messages: list[Request | Response]) -> list[int]:
    return [m.status for m in messages if isinstance(m, Response)]


def test_100_trying_is_sent_at_once_with_timestamp() -> None:
    layer, clock = TransactionLayer(), ManualClock()
    invite = make_request("INVITE")
    invite.add("Timestamp", "54")
    layer.receive_request(invite, SOURCE, clock.now)
    [(trying, dest)] = layer.messages_to_send()
    assert isinstance(trying, Response) and trying.status == 100
    assert trying.to.tag is None and trying.get("timestamp") == "54"
    # §18.2.2 / RFC 3581: back to the source address and the socket it came on.
    assert dest == SOURCE and dest.local == ("192.0.2.20", 5060)


def test_no_automatic_100_when_disabled() -> None:
    layer, clock, invite, _key = start(config=TransactionConfig(send_trying=False))
    assert sent(layer) == []
    layer.receive_request(wire_copy(invite), uac(), clock.now)
    assert sent(layer) == [] and drain(layer) == []  # nothing to resend yet


def test_retransmitted_invite_resends_the_last_provisional() -> None:
    layer, clock, invite, key = start()
    assert status_of(sent(layer)) == [100]
    ringing = respond(invite, 180)
    layer.send_response(key, ringing, clock.now)
    assert sent(layer) == [ringing]
    layer.receive_request(wire_copy(invite), uac(), clock.advance(0.5))
    assert sent(layer) == [ringing]
    assert drain(layer) == []  # absorbed: the TU sees the INVITE once


def test_non_2xx_final_retransmitted_by_timer_g_until_timer_h() -> None:
    """§17.2.1: G = T1 doubling up to T2; H = 64*T1 reports a timeout (no ACK)."""
    layer, clock, invite, key = start()
    sent(layer)
    busy = respond(invite, 486)
    layer.send_response(key, busy, clock.now)
    assert sent(layer) == [busy]
    assert layer.state(key) is State.COMPLETED
    ticks = run_timers(layer, clock, clock.now + 100)
    resends = [tick.at for tick in ticks if tick.sent]
    assert resends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(tick.sent == [busy] for tick in ticks if tick.sent)
    assert (ticks[-1].at, ticks[-1].events) == (32.0, [TransactionTimeout(key)])
    assert layer.active_transactions == 0 and layer.get_timer() is None


def test_ack_confirms_then_timer_i_ends_it() -> None:
    layer, clock, invite, key = start()
    busy = respond(invite, 486)
    layer.send_response(key, busy, clock.now)
    sent(layer)
    run_timers(layer, clock, clock.now + 2)  # two retransmissions of the 486
    sent(layer)
    ack = build_ack(invite, busy)
    layer.receive_request(ack, uac(), clock.now)
    assert layer.state(key) is State.CONFIRMED
    assert drain(layer) == [] and sent(layer) == []  # the ACK for a non-2xx is absorbed
    # Confirmed absorbs more ACKs and INVITEs, sends nothing.
    layer.receive_request(build_ack(invite, busy), uac(), clock.advance(1))
    layer.receive_request(wire_copy(invite), uac(), clock.now)
    assert drain(layer) == [] and sent(layer) == []
    ticks = run_timers(layer, clock, clock.now + 100)
    assert [tick.at for tick in ticks] == [5.0 - 1]  # Timer I = T4 from the ACK
    assert layer.active_transactions == 0


def test_retransmitted_invite_in_completed_resends_the_final() -> None:
    layer, clock, invite, key = start()
    sent(layer)
    busy = respond(invite, 600)
    layer.send_response(key, busy, clock.now)
    sent(layer)
    layer.receive_request(wire_copy(invite), uac(), clock.advance(0.1))
    assert sent(layer) == [busy]


def test_2xx_goes_to_accepted_where_invites_are_absorbed_and_acks_passed_up() -> None:
    """RFC 6026: 2xx retransmissions come from the TU; the ACK for 2xx goes to the TU."""
    layer, clock, invite, key = start()
    sent(layer)
    ok = respond(invite, 200)
    layer.send_response(key, ok, clock.now)
    assert sent(layer) == [ok] and layer.state(key) is State.ACCEPTED
    assert run_timers(layer, clock, clock.now + 31) == []  # no Timer G for 2xx

    layer.send_response(key, ok, clock.now)  # the dialog retransmits (§13.3.1.4)
    assert sent(layer) == [ok]
    layer.receive_request(wire_copy(invite), uac(), clock.now)
    assert sent(layer) == [] and drain(layer) == []

    ack = build_ack(invite, ok)  # a UAC that reuses the INVITE branch for the 2xx ACK
    layer.receive_request(ack, uac(), clock.now)
    assert drain(layer) == [AckReceived(ack, uac())]

    with pytest.raises(TransactionError):
        layer.send_response(key, respond(invite, 180), clock.now)
    with pytest.raises(TransactionError):
        layer.send_response(key, respond(invite, 486), clock.now)

    ticks = run_timers(layer, clock, clock.now + 100)
    assert [tick.at for tick in ticks] == [1.0]  # Timer L = 64*T1 from the 2xx
    assert layer.active_transactions == 0
    with pytest.raises(TransactionError):
        layer.send_response(key, ok, clock.now)


def test_ack_in_proceeding_is_ignored() -> None:
    layer, clock, invite, key = start()
    layer.receive_request(build_ack(invite, respond(invite, 486)), uac(), clock.now)
    assert layer.state(key) is State.PROCEEDING
    assert drain(layer) == []


def test_reliable_no_timer_g_and_timer_i_zero() -> None:
    layer, clock, invite, key = start("tcp")
    busy = respond(invite, 486)
    layer.send_response(key, busy, clock.now)
    sent(layer)
    assert layer.get_timer() == clock.now + 32.0  # only Timer H
    layer.receive_request(build_ack(invite, busy), uac("tcp"), clock.advance(0.1))
    assert layer.active_transactions == 0  # Timer I = 0
    assert layer.get_timer() is None


def test_reliable_timer_h_timeout() -> None:
    layer, clock, invite, key = start("tcp")
    layer.send_response(key, respond(invite, 480), clock.now)
    sent(layer)
    ticks = run_timers(layer, clock, clock.now + 100)
    assert [(t.at, t.sent, t.events) for t in ticks] == [(32.0, [], [TransactionTimeout(key)])]

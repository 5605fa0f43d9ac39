"""A client and a server TransactionLayer over an in-memory network with loss.

Every message crosses as bytes and is parsed again; the clock is stepped by
hand through the layers' own timers.
"""

from __future__ import annotations

import itertools

import pytest

from callway.sip.message import Request, Response
from callway.sip.transaction import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
    ServerTransactionKey,
    State,
    TransactionEvent,
    TransactionTimeout,
    build_cancel,
    new_branch,
)
from tests.helpers.network import Predicate
from tests.unit.sip.transaction.factories import Pair, drain, respond, statuses


def is_method(method: str) -> Predicate:
    return lambda m: isinstance(m, Request) and m.method == method


def is_status(status: int) -> Predicate:
    return lambda m: isinstance(m, Response) and m.status == status


def describe(message: Request | Response) -> str:
    return message.method if isinstance(message, Request) else str(message.status)


def only_request(events: list[TransactionEvent]) -> RequestReceived:
    [event] = events
    assert isinstance(event, RequestReceived)
    return event


def invite_to_486(pair: Pair) -> tuple[Request, ServerTransactionKey]:
    invite = pair.request("INVITE")
    pair.client.send_request(invite, pair.server_addr, pair.now)
    pair.flush()
    key = only_request(drain(pair.server)).key
    pair.server.send_response(key, respond(key_request(pair, key), 486), pair.now)
    pair.flush()
    return invite, key


def key_request(pair: Pair, key: ServerTransactionKey) -> Request:
    return pair.server._servers[key].request


def test_lost_invite_recovered_by_timer_a() -> None:
    pair = Pair()
    pair.net.drop_next(1)
    invite = pair.request("INVITE")
    pair.client.send_request(invite, pair.server_addr, pair.now)
    pair.flush()
    assert drain(pair.server) == []
    pair.advance(0.5)  # Timer A
    event = only_request(drain(pair.server))
    assert event.request.via.branch == invite.via.branch
    assert statuses(drain(pair.client)) == [100]
    pair.advance(10)
    assert len(pair.net.sent("INVITE")) == 2  # the 100 stopped Timer A


def test_lost_100_then_retransmitted_invite_gets_it_again() -> None:
    pair = Pair()
    pair.net.drop_next(1, is_status(100))
    pair.client.send_request(pair.request("INVITE"), pair.server_addr, pair.now)
    pair.flush()
    key = only_request(drain(pair.server)).key
    assert drain(pair.client) == []
    pair.advance(0.5)
    assert drain(pair.server) == []  # the retransmission was absorbed
    assert statuses(drain(pair.client)) == [100]
    assert len(pair.net.sent(100)) == 2
    assert pair.server.state(key) is State.PROCEEDING


def test_duplicated_request_is_absorbed_and_last_response_resent() -> None:
    pair = Pair()
    pair.net.duplicate_next(1, is_method("OPTIONS"))
    options = pair.request("OPTIONS")
    pair.client.send_request(options, pair.server_addr, pair.now)
    pair.flush()
    key = only_request(drain(pair.server)).key  # one event for two copies
    ok = respond(key_request(pair, key), 200)
    pair.server.send_response(key, ok, pair.now)
    pair.flush()
    pair.net.duplicate_next(1, is_method("OPTIONS"))
    pair.advance(0.5)  # Timer E fires in Completed? no: client got the 200
    assert statuses(drain(pair.client)) == [200]
    # A late duplicate arriving at the server is answered with the same 200.
    pair.server.receive_request(options, pair.client_addr, pair.now)
    [(resent, _)] = pair.server.messages_to_send()
    assert resent.to_bytes() == ok.to_bytes()


def test_lost_final_response_recovered_by_request_retransmission() -> None:
    pair = Pair()
    pair.net.drop_next(1, is_status(200))
    options = pair.request("OPTIONS")
    key = pair.client.send_request(options, pair.server_addr, pair.now)
    pair.flush()
    server_key = only_request(drain(pair.server)).key
    pair.server.send_response(server_key, respond(key_request(pair, server_key), 200), pair.now)
    pair.flush()
    assert drain(pair.client) == []
    pair.advance(0.5)  # Timer E -> the server resends its 200
    [event] = drain(pair.client)
    assert isinstance(event, ResponseReceived) and event.key == key
    assert event.response.status == 200


def test_lost_non_2xx_final_recovered_by_timer_g() -> None:
    pair = Pair()
    pair.net.drop_next(1, is_status(486))
    _invite, key = invite_to_486(pair)
    assert statuses(drain(pair.client)) == [100]
    pair.advance(0.5)  # Timer G (Timer A stopped with the 100)
    assert statuses(drain(pair.client)) == [486]
    assert len(pair.net.delivered("ACK")) == 1
    assert pair.server.state(key) is State.CONFIRMED


def test_lost_ack_makes_the_server_resend_and_the_client_re_ack() -> None:
    pair = Pair()
    pair.net.drop_next(2, is_method("ACK"))
    _invite, key = invite_to_486(pair)
    assert statuses(drain(pair.client)) == [100, 486]
    pair.advance(0.5)  # Timer G: 486 again, ACK again (lost)
    pair.advance(1.0)  # Timer G: 486 again, ACK again (arrives)
    assert drain(pair.client) == []  # retransmitted 486s are absorbed
    acks = pair.net.sent("ACK")
    assert len(acks) == 3 and all(a.to_bytes() == acks[0].to_bytes() for a in acks)
    assert pair.server.state(key) is State.CONFIRMED
    pair.advance(40)
    assert pair.client.active_transactions == 0 and pair.server.active_transactions == 0


def test_timer_h_fires_when_no_ack_arrives() -> None:
    pair = Pair()
    pair.net.drop_next(1000, is_method("ACK"))
    start = pair.now
    _invite, key = invite_to_486(pair)
    pair.advance(31.9)
    assert drain(pair.server) == []
    pair.advance(0.1)
    assert drain(pair.server) == [TransactionTimeout(key)]
    assert pair.now - start == 32.0
    assert len(pair.net.sent(486)) == 11  # first + 10 Timer G retransmissions


def test_2xx_retransmissions_from_the_tu_are_passed_up_in_accepted() -> None:
    pair = Pair()
    invite = pair.request("INVITE")
    client_key = pair.client.send_request(invite, pair.server_addr, pair.now)
    pair.flush()
    key = only_request(drain(pair.server)).key
    ok = respond(key_request(pair, key), 200)
    for delay in (0.0, 0.5, 1.0, 2.0):  # the dialog's 2xx retransmission schedule
        pair.advance(delay)
        pair.server.send_response(key, ok, pair.now)
        pair.flush()
    assert statuses(drain(pair.client)) == [100, 200, 200, 200, 200]
    assert pair.client.state(client_key) is State.ACCEPTED
    assert pair.server.state(key) is State.ACCEPTED

    # The TU's ACK for 2xx (§13.2.2.4): its own branch, sent outside transactions.
    ack = Request("ACK", "sip:bob@192.0.2.20", [])
    for name in ("from", "call-id", "max-forwards"):
        ack.add(name, invite.get(name))
    ack.add("To", ok.get("to"))
    ack.add("CSeq", "1 ACK")
    ack.prepend("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch={new_branch()}")
    pair.client.send_stateless(ack, pair.server_addr)
    pair.flush()
    [event] = drain(pair.server)
    assert isinstance(event, AckReceived) and event.request.method == "ACK"
    pair.advance(40)  # Timers L and M
    assert pair.client.active_transactions == 0 and pair.server.active_transactions == 0


def test_cancel_a_ringing_invite() -> None:
    """§9.1/§9.2: CANCEL is its own transaction; the TU finds the INVITE and answers 487."""
    pair = Pair()
    invite = pair.request("INVITE")
    invite_key = pair.client.send_request(invite, pair.server_addr, pair.now)
    pair.flush()
    server_invite = only_request(drain(pair.server))
    pair.server.send_response(server_invite.key, respond(server_invite.request, 180), pair.now)
    pair.flush()
    assert statuses(drain(pair.client)) == [100, 180]

    cancel_key = pair.client.send_request(build_cancel(invite), pair.server_addr, pair.now)
    pair.flush()
    cancel_event = only_request(drain(pair.server))
    assert cancel_event.request.method == "CANCEL"
    found = pair.server.find_invite_server_transaction(cancel_event.request)
    assert found == server_invite.key
    pair.server.send_response(cancel_event.key, respond(cancel_event.request, 200), pair.now)
    pair.server.send_response(found, respond(server_invite.request, 487), pair.now)
    pair.flush()

    events = drain(pair.client)
    assert {(e.key, e.response.status) for e in events if isinstance(e, ResponseReceived)} == {
        (cancel_key, 200),
        (invite_key, 487),
    }
    assert len(pair.net.delivered("ACK")) == 1
    assert pair.server.state(server_invite.key) is State.CONFIRMED
    pair.advance(64)
    assert pair.client.active_transactions == 0 and pair.server.active_transactions == 0


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_reliable_transport_sends_each_message_once(transport: str) -> None:
    pair = Pair(transport)
    _invite, _key = invite_to_486(pair)
    options = pair.request("OPTIONS")
    pair.client.send_request(options, pair.server_addr, pair.now)
    pair.flush()
    options_key = only_request(drain(pair.server)).key
    pair.server.send_response(options_key, respond(key_request(pair, options_key), 200), pair.now)
    pair.flush()
    pair.advance(100)
    assert [describe(m) for m in pair.net.sent()] == [
        "INVITE", "100", "486", "ACK", "OPTIONS", "200",
    ]  # fmt: skip
    assert pair.client.active_transactions == 0 and pair.server.active_transactions == 0


def answer_all(pair: Pair) -> None:
    """The UAS TU: a final for every new request (INVITEs alternate 200 and 486)."""
    for event in drain(pair.server):
        if isinstance(event, RequestReceived):
            request = event.request
            status = 200
            if request.method == "INVITE" and request.cseq.seq % 2:
                status = 486
            pair.server.send_response(event.key, respond(request, status), pair.now)
    pair.flush()


def test_many_transactions_leave_nothing_behind() -> None:
    """No leak: after every timer has run, both layers hold no transaction and no timer."""
    pair = Pair()
    counter = itertools.count()
    pair.net.drop_next(10**6, lambda _: next(counter) % 5 == 4)  # lose every fifth message
    keys = []
    for i in range(400):
        method = ("INVITE", "OPTIONS", "INVITE", "BYE")[i % 4]
        request = pair.request(method, cseq=i + 1)
        keys.append(pair.client.send_request(request, pair.server_addr, pair.now))
        pair.flush()
        answer_all(pair)
        pair.advance(0.01)
        answer_all(pair)
    assert pair.client.active_transactions > 100 and pair.server.active_transactions > 100
    for _ in range(40):
        pair.advance(1.0)
        answer_all(pair)
    # An INVITE whose 2xx was lost after a 1xx waits in Proceeding for its TU,
    # which gives up on it (§9.1); nothing else is left.
    waiting = [key for key in keys if pair.client.state(key) is not None]
    assert all(pair.client.state(key) is State.PROCEEDING for key in waiting)
    for key in waiting:
        assert pair.client.terminate(key)
    assert pair.client.active_transactions == 0 and pair.server.active_transactions == 0
    assert pair.client.get_timer() is None and pair.server.get_timer() is None
    assert len(pair.client._out.timers) == 0 and len(pair.server._out.timers) == 0
    assert pair.server._ack_aliases == {}

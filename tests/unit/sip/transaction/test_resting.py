"""Completed non-INVITE server transactions over UDP shrink to bytes until Timer J (§17.2.2)."""

from __future__ import annotations

import gc
import tracemalloc

from callway.core.address import Address
from callway.sip.message import Request, make_response, parse_message
from callway.sip.transaction import RequestReceived, State, TransactionLayer
from callway.sip.transaction.events import ResponseReceived, StrayResponse, TransportError
from callway.sip.transaction.matching import server_key

PEER = Address("udp", "192.0.2.1", 5060, ("192.0.2.2", 5060))
TCP_PEER = Address("tcp", "192.0.2.1", 5060, ("192.0.2.2", 5060), conn=7)


def register(branch: str = "z9hG4bK-1", transport: str = "UDP") -> Request:
    data = (
        "REGISTER sip:192.0.2.2 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 192.0.2.1:5060;branch={branch}\r\n"
        "From: <sip:a@192.0.2.2>;tag=1\r\nTo: <sip:a@192.0.2.2>\r\n"
        "Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def answer(layer: TransactionLayer, request: Request, peer: Address, now: float) -> bytes:
    layer.receive_request(request, peer, now)
    event = layer.next_event()
    assert isinstance(event, RequestReceived)
    ok = make_response(request, 200, to_tag="t")
    layer.send_response(event.key, ok, now)
    [(sent, dest)] = layer.messages_to_send()
    assert sent is ok and dest == peer
    return ok.to_bytes()


def test_retransmission_gets_the_same_bytes_until_timer_j() -> None:
    layer = TransactionLayer()
    wire = answer(layer, register(), PEER, 100.0)
    assert layer.active_transactions == 1
    assert layer.get_timer() == 132.0  # Timer J = 64*T1
    layer.receive_request(register(), PEER, 110.0)
    [(again, dest)] = layer.messages_to_send()
    assert again.to_bytes() == wire and dest == PEER
    assert layer.next_event() is None  # absorbed, not passed to the TU
    layer.handle_timer(131.9)
    assert layer.active_transactions == 1
    layer.handle_timer(132.0)
    assert layer.active_transactions == 0 and layer.get_timer() is None
    layer.receive_request(register(), PEER, 133.0)  # a new transaction now
    assert isinstance(layer.next_event(), RequestReceived)


def test_state_terminate_and_transport_error_of_a_resting_transaction() -> None:
    layer = TransactionLayer()
    answer(layer, register("z9hG4bK-a"), PEER, 0.0)
    answer(layer, register("z9hG4bK-b"), PEER, 0.0)
    key_a = register("z9hG4bK-a")
    layer.receive_request(key_a, PEER, 1.0)
    assert len(layer.messages_to_send()) == 1
    assert layer.state(server_key(key_a)) is State.COMPLETED
    assert layer.terminate(server_key(key_a))
    assert layer.state(server_key(key_a)) is None
    key_b = server_key(register("z9hG4bK-b"))
    layer.transport_error(make_response(register("z9hG4bK-b"), 200, to_tag="t"), 2.0)
    assert layer.next_event() == TransportError(key_b)
    assert layer.active_transactions == 0
    layer.handle_timer(100.0)  # the stale Timer J entries are skipped
    assert layer.get_timer() is None


def test_reliable_transport_terminates_at_once() -> None:
    layer = TransactionLayer()
    answer(layer, register(transport="TCP"), TCP_PEER, 0.0)
    assert layer.active_transactions == 0 and layer.get_timer() is None


def test_the_layer_shortcuts_follow_figure_8() -> None:
    """receive_request and _complete_non_invite run these rows without the table."""
    from callway.sip.transaction.machine import Action, Input, Transition
    from callway.sip.transaction.server import NON_INVITE_SERVER_TABLE as TABLE

    assert TABLE[(State.INIT, Input.RECV_REQUEST)] == Transition(
        State.TRYING, (Action.PASS_REQUEST,)
    )
    for state in (State.TRYING, State.PROCEEDING):
        for final in (Input.SEND_2XX, Input.SEND_300_699):
            assert TABLE[(state, final)] == Transition(
                State.COMPLETED, (Action.SEND_RESPONSE, Action.START_J)
            )
    assert TABLE[(State.COMPLETED, Input.RECV_REQUEST)].actions == (Action.RESEND_RESPONSE,)


def test_the_layer_shortcuts_follow_figures_5_6_and_7() -> None:
    """receive_response, _accept_invite, _accept_client and _complete_client run these rows."""
    from callway.sip.transaction.client import INVITE_CLIENT_TABLE, NON_INVITE_CLIENT_TABLE
    from callway.sip.transaction.machine import Action, Input, Transition
    from callway.sip.transaction.server import INVITE_SERVER_TABLE

    assert INVITE_SERVER_TABLE[(State.PROCEEDING, Input.SEND_2XX)] == Transition(
        State.ACCEPTED, (Action.SEND_RESPONSE, Action.START_L)
    )
    for state in (State.CALLING, State.PROCEEDING):
        assert INVITE_CLIENT_TABLE[(state, Input.RECV_2XX)] == Transition(
            State.ACCEPTED, (Action.PASS_RESPONSE, Action.START_M)
        )
    for state in (State.TRYING, State.PROCEEDING):
        for final in (Input.RECV_2XX, Input.RECV_300_699):
            assert NON_INVITE_CLIENT_TABLE[(state, final)] == Transition(
                State.COMPLETED, (Action.PASS_RESPONSE, Action.START_K)
            )
    # What the resting records do: the rows of Accepted and of Completed (client).
    assert INVITE_SERVER_TABLE[(State.ACCEPTED, Input.RECV_REQUEST)].actions == ()
    assert INVITE_SERVER_TABLE[(State.ACCEPTED, Input.RECV_ACK)].actions == (Action.PASS_ACK,)
    assert INVITE_CLIENT_TABLE[(State.ACCEPTED, Input.RECV_2XX)].actions == (
        Action.PASS_RESPONSE,
    )
    assert (State.ACCEPTED, Input.RECV_1XX) not in INVITE_CLIENT_TABLE
    assert (State.COMPLETED, Input.RECV_2XX) not in NON_INVITE_CLIENT_TABLE


def invite(branch: str = "z9hG4bK-i1", transport: str = "UDP") -> Request:
    data = (
        "INVITE sip:b@192.0.2.2 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 192.0.2.1:5060;branch={branch}\r\n"
        "From: <sip:a@192.0.2.2>;tag=1\r\nTo: <sip:b@192.0.2.2>\r\n"
        "Call-ID: i1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def test_accepted_invite_keeps_where_its_2xx_went() -> None:
    """RFC 6026 Accepted as a record: local socket and connection survive the round trip."""
    layer = TransactionLayer()
    layer.receive_request(invite(transport="TCP"), TCP_PEER, 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived)
    layer.messages_to_send()  # the 100 Trying
    ok = make_response(event.request, 200, to_tag="t")
    layer.send_response(event.key, ok, 0.0)
    assert layer.messages_to_send() == [(ok, TCP_PEER)]
    assert layer.state(event.key) is State.ACCEPTED and layer.active_transactions == 1
    layer.send_response(event.key, ok, 1.0)  # the dialog's retransmission
    [(again, dest)] = layer.messages_to_send()
    assert again is ok and dest == TCP_PEER
    assert (dest.local, dest.conn) == (TCP_PEER.local, TCP_PEER.conn)
    cancel = invite(transport="TCP")
    assert layer.find_invite_server_transaction(cancel) == event.key
    layer.transport_error(ok, 2.0)  # reported; Accepted stays (RFC 6026)
    assert layer.next_event() == TransportError(event.key)
    assert layer.state(event.key) is State.ACCEPTED
    assert layer.get_timer() == 32.0  # Timer L, over TCP too
    layer.handle_timer(32.0)
    assert layer.state(event.key) is None and layer.find_invite_server_transaction(cancel) is None


def test_completed_non_invite_client_absorbs_responses_until_timer_k() -> None:
    layer = TransactionLayer()
    bye = register("z9hG4bK-c1")
    key = layer.send_request(bye, PEER, 0.0)
    layer.messages_to_send()
    ok = make_response(bye, 200, to_tag="t")
    layer.receive_response(ok, PEER, 0.1)
    assert [layer.next_event()] == [ResponseReceived(key, ok)]
    assert layer.state(key) is State.COMPLETED and layer.get_timer() == 5.1  # Timer K = T4
    layer.receive_response(ok, PEER, 1.0)  # a retransmission: absorbed, not stray
    assert layer.next_event() is None
    layer.handle_timer(5.1)
    assert layer.state(key) is None and layer.active_transactions == 0
    layer.receive_response(ok, PEER, 6.0)
    assert isinstance(layer.next_event(), StrayResponse)


def test_resting_transactions_hold_no_python_objects() -> None:
    """Thousands of resting transactions cost a few bytes of Python memory each (no objects).

    Their records live in memory maps (not traced here); what is traced is the
    hash table growing.  As objects they were about 950 bytes each.
    """
    layer = TransactionLayer()
    requests = [register(f"z9hG4bK-m{index}") for index in range(3000)]
    responses = [make_response(request, 200, to_tag="t") for request in requests]
    for request, response in zip(requests, responses, strict=True):  # parse what is cached
        server_key(request)
        response.seal()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for request, response in zip(requests, responses, strict=True):
            layer.receive_request(request, PEER, 0.0)
            event = layer.next_event()
            assert isinstance(event, RequestReceived)
            layer.send_response(event.key, response, 0.0)
            layer.messages_to_send()
        gc.collect()
        per_transaction = (tracemalloc.get_traced_memory()[0] - before) / len(requests)
    finally:
        tracemalloc.stop()
    assert layer.active_transactions == 3000 and layer.resting_bytes > 0
    assert per_transaction < 60, per_transaction
    layer.handle_timer(32.0)
    assert layer.active_transactions == 0 and layer.resting_bytes == 0


def test_completed_invite_client_rests_with_its_ack_until_timer_d() -> None:
    """A refused call: the ACK is kept as bytes, resent per retransmitted final (§17.1.1.2)."""
    layer = TransactionLayer()
    call = invite("z9hG4bK-d1")
    key = layer.send_request(call, PEER, 0.0)
    layer.messages_to_send()
    busy = make_response(call, 486, to_tag="t")
    layer.receive_response(busy, PEER, 1.0)
    [(ack, dest)] = layer.messages_to_send()
    assert isinstance(ack, Request) and ack.method == "ACK" and dest == PEER
    assert layer.next_event() == ResponseReceived(key, busy)
    assert layer.state(key) is State.COMPLETED and layer.get_timer() == 33.0  # Timer D
    layer.receive_response(busy, PEER, 2.0)
    [(again, dest)] = layer.messages_to_send()
    assert again.to_bytes() == ack.to_bytes() and dest == PEER
    assert layer.next_event() is None  # not passed up twice
    layer.transport_error(again, 3.0)  # the ACK could not be sent: Terminated
    assert layer.next_event() == TransportError(key)
    assert layer.state(key) is None and layer.active_transactions == 0


def test_confirmed_invite_server_rests_until_timer_i() -> None:
    """A refused INVITE's ACK: Confirmed absorbs ACKs and INVITEs for T4 (§17.2.1)."""
    from callway.sip.transaction import AckReceived
    from callway.sip.transaction.builders import build_ack

    layer = TransactionLayer()
    call = invite("z9hG4bK-ci")
    layer.receive_request(call, PEER, 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived)
    challenge = make_response(call, 401, to_tag="t")
    layer.send_response(event.key, challenge, 0.0)
    layer.messages_to_send()
    ack = build_ack(call, challenge)
    layer.receive_request(ack, PEER, 0.1)
    assert layer.state(event.key) is State.CONFIRMED and layer.next_event() is None
    assert layer.find_invite_server_transaction(invite("z9hG4bK-ci")) == event.key
    layer.receive_request(build_ack(call, challenge), PEER, 0.2)  # absorbed
    layer.receive_request(invite("z9hG4bK-ci"), PEER, 0.3)  # absorbed
    assert layer.next_event() is None and layer.messages_to_send() == []
    layer.handle_timer(0.1 + 5.0)  # Timer I = T4
    assert layer.state(event.key) is None and layer.active_transactions == 0
    layer.receive_request(build_ack(call, challenge), PEER, 6.0)
    assert isinstance(layer.next_event(), AckReceived)  # no transaction: up to the TU

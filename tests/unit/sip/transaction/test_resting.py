"""Completed non-INVITE server transactions over UDP shrink to bytes until Timer J (§17.2.2)."""

from __future__ import annotations

from callway.core.address import Address
from callway.sip.message import Request, make_response, parse_message
from callway.sip.transaction import RequestReceived, State, TransactionLayer
from callway.sip.transaction.events import TransportError
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

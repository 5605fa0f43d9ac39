"""Matching requests and responses to transactions (RFC 3261 §17.1.3, §17.2.3, §9.2)."""

from __future__ import annotations

from typing import Any

import pytest

from callway.sip.errors import ParseError
from callway.sip.message import Request
from callway.sip.transaction import (
    MAGIC_COOKIE,
    AckReceived,
    RequestReceived,
    ServerTransactionKey,
    State,
    StrayResponse,
    TransactionError,
    TransactionLayer,
    TransportError,
    build_ack,
    build_cancel,
    new_branch,
)
from tests.helpers.clock import ManualClock
from tests.unit.sip.transaction.factories import (
    drain,
    make_request,
    respond,
    uac,
    uas,
    wire_copy,
)


def received(layer: TransactionLayer, request: Request, now: float = 0.0) -> list[object]:
    layer.receive_request(request, uac(), now)
    layer.messages_to_send()
    return list(drain(layer))


def key_of(events: list[object]) -> ServerTransactionKey:
    [event] = events
    assert isinstance(event, RequestReceived)
    return event.key


def test_new_branch_has_the_magic_cookie_and_is_fresh() -> None:
    branches = {new_branch() for _ in range(1000)}
    assert len(branches) == 1000
    assert all(b.startswith(MAGIC_COOKIE) and len(b) > 20 for b in branches)


def test_same_branch_from_another_sent_by_is_another_transaction() -> None:
    layer = TransactionLayer()
    branch = new_branch()
    first = key_of(received(layer, make_request("OPTIONS", branch=branch)))
    second = key_of(
        received(layer, make_request("OPTIONS", branch=branch, sent_by="203.0.113.5:5060"))
    )
    assert first != second and first.branch == second.branch
    assert layer.active_transactions == 2


def test_sent_by_default_port_and_host_case() -> None:
    layer = TransactionLayer()
    branch = new_branch()
    key_of(received(layer, make_request("OPTIONS", branch=branch, sent_by="Host.Example.COM")))
    retransmit = make_request("OPTIONS", branch=branch, sent_by="host.example.com:5060")
    assert received(layer, retransmit) == []


def test_same_branch_other_method_is_another_transaction() -> None:
    """§17.2.3 rule 3: a CANCEL shares the INVITE's branch but is its own transaction."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    invite_key = key_of(received(layer, invite))
    cancel = build_cancel(invite)
    cancel_key = key_of(received(layer, cancel))
    assert cancel_key == ServerTransactionKey(invite_key.branch, invite_key.sent_by, "CANCEL")
    assert layer.find_invite_server_transaction(cancel) == invite_key
    assert layer.state(invite_key) is State.PROCEEDING


def test_cancel_without_invite_finds_nothing() -> None:
    layer = TransactionLayer()
    cancel = build_cancel(make_request("INVITE"))
    key_of(received(layer, cancel))
    assert layer.find_invite_server_transaction(cancel) is None


def test_cancel_does_not_find_a_non_invite() -> None:
    layer = TransactionLayer()
    options = make_request("OPTIONS")
    key_of(received(layer, options))
    assert layer.find_invite_server_transaction(build_cancel(options)) is None


def test_ack_for_2xx_with_its_own_branch_goes_to_the_tu() -> None:
    """§17.1.1.3 / §13.2.2.4: the 2xx ACK is a new transaction's branch: no match."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    key = key_of(received(layer, invite))
    ok = respond(invite, 200)
    layer.send_response(key, ok, 0.0)
    ack = build_ack(invite, ok)
    ack.set("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch={new_branch()}")
    layer.receive_request(ack, uac(), 0.0)
    assert drain(layer) == [AckReceived(ack, uac())]
    assert layer.active_transactions == 1  # the INVITE is still Accepted


def test_ack_without_any_transaction_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    ack = make_request("ACK")
    layer.receive_request(ack, uac(), 0.0)
    assert drain(layer) == [AckReceived(ack, uac())]
    assert layer.active_transactions == 0 and layer.messages_to_send() == []


def test_unmatched_response_is_stray() -> None:
    layer = TransactionLayer()
    response = respond(make_request("INVITE"), 200)
    layer.receive_response(response, uas(), 0.0)
    assert drain(layer) == [StrayResponse(response, uas())]


def test_response_without_branch_is_stray() -> None:
    layer = TransactionLayer()
    response = respond(make_request("OPTIONS", branch=""), 200)
    layer.receive_response(response, uas(), 0.0)
    assert drain(layer) == [StrayResponse(response, uas())]


def test_message_without_via_raises_parse_error_and_changes_nothing() -> None:
    layer = TransactionLayer()
    request = make_request("OPTIONS")
    request.remove("Via")
    with pytest.raises(ParseError):
        layer.receive_request(request, uac(), 0.0)
    assert layer.active_transactions == 0 and drain(layer) == []


# -- RFC 2543 fallback (§17.2.3) ---------------------------------------------


def legacy(method: str = "INVITE", **kwargs: Any) -> Request:
    return make_request(method, branch="", **kwargs)


def test_rfc2543_retransmission_matches_without_branch() -> None:
    layer = TransactionLayer()
    invite = legacy()
    key = key_of(received(layer, invite))
    assert key.legacy
    assert received(layer, wire_copy(invite)) == []
    assert layer.active_transactions == 1
    other = legacy(cseq=2)
    key_of(received(layer, other))
    assert layer.active_transactions == 2


def test_rfc2543_non_cookie_branch_uses_the_fallback_too() -> None:
    layer = TransactionLayer()
    key = key_of(received(layer, make_request("OPTIONS", branch="1234abcd")))
    assert key.legacy


def test_rfc2543_ack_matches_by_the_to_tag_of_the_response() -> None:
    layer = TransactionLayer()
    invite = legacy()
    key = key_of(received(layer, invite))
    busy = respond(invite, 486, to_tag="srv1")
    layer.send_response(key, busy, 0.0)
    layer.messages_to_send()
    wrong = build_ack(invite, respond(invite, 486, to_tag="other"))
    layer.receive_request(wrong, uac(), 0.0)
    assert drain(layer) == [AckReceived(wrong, uac())]
    assert layer.state(key) is State.COMPLETED
    layer.receive_request(build_ack(invite, busy), uac(), 0.0)
    assert layer.state(key) is State.CONFIRMED and drain(layer) == []
    layer.handle_timer(5.0)
    assert layer.active_transactions == 0
    assert layer._ack_aliases == {}


def test_rfc2543_cancel_matching() -> None:
    layer = TransactionLayer()
    invite = legacy()
    key = key_of(received(layer, invite))
    cancel = build_cancel(invite)
    cancel_key = key_of(received(layer, cancel))
    assert cancel_key != key
    assert layer.find_invite_server_transaction(cancel) == key


# -- TU errors and transport errors ------------------------------------------


def test_tu_errors() -> None:
    layer = TransactionLayer()
    with pytest.raises(TransactionError):
        layer.send_request(make_request("ACK"), uas(), 0.0)
    with pytest.raises(TransactionError):
        layer.send_request(make_request("OPTIONS", branch=""), uas(), 0.0)
    request = make_request("OPTIONS")
    layer.send_request(request, uas(), 0.0)
    with pytest.raises(TransactionError):
        layer.send_request(request, uas(), 0.0)
    unknown = ServerTransactionKey(new_branch(), ("192.0.2.10", 5060), "OPTIONS")
    with pytest.raises(TransactionError):
        layer.send_response(unknown, respond(request, 200), 0.0)
    assert layer.terminate(unknown) is False


def test_transport_error_on_a_request_terminates_the_client_transaction() -> None:
    layer, clock = TransactionLayer(), ManualClock()
    request = make_request("OPTIONS", transport="TCP")
    key = layer.send_request(request, uas("tcp"), clock.now)
    [(message, _)] = layer.messages_to_send()
    layer.transport_error(message, clock.now)
    assert drain(layer) == [TransportError(key)]
    assert layer.active_transactions == 0 and layer.get_timer() is None


def test_transport_error_on_a_response_terminates_the_server_transaction() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE")
    key = key_of(received(layer, invite))
    busy = respond(invite, 486)
    layer.send_response(key, busy, 0.0)
    [(message, _)] = layer.messages_to_send()
    layer.transport_error(message, 0.0)
    assert drain(layer) == [TransportError(key)]
    assert layer.active_transactions == 0 and layer.get_timer() is None


def test_transport_error_on_a_legacy_response() -> None:
    layer = TransactionLayer()
    invite = legacy("OPTIONS")
    key = key_of(received(layer, invite))
    layer.send_response(key, respond(invite, 180), 0.0)
    [(message, _)] = layer.messages_to_send()
    layer.transport_error(message, 0.0)
    assert drain(layer) == [TransportError(key)]


def test_transport_error_for_unknown_message_is_ignored() -> None:
    layer = TransactionLayer()
    layer.transport_error(make_request("OPTIONS"), 0.0)
    layer.transport_error(respond(make_request("OPTIONS"), 200), 0.0)
    assert drain(layer) == []


def test_transport_error_in_accepted_is_reported_and_waits_for_timer_l() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE")
    key = key_of(received(layer, invite))
    ok = respond(invite, 200)
    layer.send_response(key, ok, 0.0)
    layer.messages_to_send()
    layer.transport_error(ok, 0.0)
    assert drain(layer) == [TransportError(key)]
    assert layer.state(key) is State.ACCEPTED


def test_send_stateless_bypasses_transactions() -> None:
    layer = TransactionLayer()
    ack = make_request("ACK")
    layer.send_stateless(ack, uas())
    assert layer.messages_to_send() == [(ack, uas())]
    assert layer.active_transactions == 0 and layer.get_timer() is None

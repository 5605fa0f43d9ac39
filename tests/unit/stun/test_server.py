"""The sans-I/O Binding responder: RFC 8489 answers and RFC 5780 CHANGE-REQUEST."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callway.stun.message import (
    MAGIC_COOKIE,
    Attribute,
    AttrType,
    ChangeRequest,
    MessageClass,
    Method,
    StunMessage,
    decode,
    encode,
)
from callway.stun.server import StunResponder, binding_response
from callway.transport.stun import answer_stun_on

TID = bytes(range(12))
IP1, IP2, P1, P2 = "192.0.2.1", "192.0.2.2", 3478, 3479
CLIENT = ("198.51.100.9", 40000)


def request(
    *attrs: Attribute, method: int = Method.BINDING, cls: MessageClass = MessageClass.REQUEST
) -> bytes:
    return encode(StunMessage(method, cls, TID, attrs))


def change(ip: bool, port: bool) -> Attribute:
    return Attribute(AttrType.CHANGE_REQUEST, ChangeRequest(ip, port))


@pytest.fixture
def rfc5780() -> StunResponder:
    return StunResponder((IP1, P1), (IP2, P2))


def test_plain_binding_response() -> None:
    responder = StunResponder((IP1, P1))
    [reply] = responder.handle(request(), CLIENT, (IP1, P1))
    assert (reply.local, reply.remote) == ((IP1, P1), CLIENT)
    msg = decode(reply.data)  # decode checks FINGERPRINT
    assert (msg.method, msg.cls, msg.transaction_id) == (Method.BINDING, MessageClass.SUCCESS, TID)
    assert msg.address(AttrType.XOR_MAPPED_ADDRESS) == CLIENT
    assert msg.address(AttrType.MAPPED_ADDRESS) == CLIENT
    assert msg.text(AttrType.SOFTWARE) == "callway"
    assert msg.attributes[-1].type == AttrType.FINGERPRINT
    assert msg.get(AttrType.OTHER_ADDRESS) is None and msg.get(AttrType.RESPONSE_ORIGIN) is None


def test_ipv6_client() -> None:
    source = ("2001:db8::42", 5060)
    [reply] = StunResponder(("::1", P1)).handle(request(), source, ("::1", P1))
    assert decode(reply.data).address(AttrType.XOR_MAPPED_ADDRESS) == source


def test_listening_combinations() -> None:
    assert StunResponder((IP1, P1)).local_addresses == [(IP1, P1)]
    assert StunResponder((IP1, P1), (IP2, P2)).local_addresses == [
        (IP1, P1),
        (IP1, P2),
        (IP2, P1),
        (IP2, P2),
    ]
    assert StunResponder((IP1, P1), (IP1, P2)).local_addresses == [(IP1, P1), (IP1, P2)]
    assert StunResponder((IP1, P1), (IP2, P1)).local_addresses == [(IP1, P1), (IP2, P1)]


@pytest.mark.parametrize(
    ("local", "other"),
    [
        ((IP1, P1), (IP2, P2)),
        ((IP2, P2), (IP1, P1)),
        ((IP1, P2), (IP2, P1)),
        ((IP2, P1), (IP1, P2)),
    ],
)
def test_other_address_and_response_origin(
    rfc5780: StunResponder, local: tuple[str, int], other: tuple[str, int]
) -> None:
    [reply] = rfc5780.handle(request(), CLIENT, local)
    msg = decode(reply.data)
    assert reply.local == local
    assert msg.address(AttrType.RESPONSE_ORIGIN) == local
    assert msg.address(AttrType.OTHER_ADDRESS) == other


@pytest.mark.parametrize(
    ("flags", "sender"),
    [
        ((False, False), (IP1, P1)),
        ((True, False), (IP2, P1)),
        ((False, True), (IP1, P2)),
        ((True, True), (IP2, P2)),
    ],
)
def test_change_request_picks_the_sending_socket(
    rfc5780: StunResponder, flags: tuple[bool, bool], sender: tuple[str, int]
) -> None:
    """RFC 5780 §7.2: answer from the other IP and/or port; RESPONSE-ORIGIN says which."""
    [reply] = rfc5780.handle(request(change(*flags)), CLIENT, (IP1, P1))
    assert (reply.local, reply.remote) == (sender, CLIENT)
    msg = decode(reply.data)
    assert msg.address(AttrType.RESPONSE_ORIGIN) == sender
    assert msg.address(AttrType.OTHER_ADDRESS) == (IP2, P2)  # relative to where it arrived
    assert msg.address(AttrType.XOR_MAPPED_ADDRESS) == CLIENT


def test_change_request_from_the_alternate_socket(rfc5780: StunResponder) -> None:
    [reply] = rfc5780.handle(request(change(True, True)), CLIENT, (IP2, P2))
    assert reply.local == (IP1, P1)


def test_one_ip_two_ports_changes_port_only() -> None:
    responder = StunResponder((IP1, P1), (IP1, P2))
    [reply] = responder.handle(request(change(False, True)), CLIENT, (IP1, P1))
    assert reply.local == (IP1, P2)
    assert decode(reply.data).address(AttrType.OTHER_ADDRESS) == (IP1, P2)
    [refused] = responder.handle(request(change(True, False)), CLIENT, (IP1, P1))
    msg = decode(refused.data)
    assert msg.cls == MessageClass.ERROR and msg.error_code is not None
    assert msg.error_code.code == 420
    assert msg.get(AttrType.UNKNOWN_ATTRIBUTES) == (AttrType.CHANGE_REQUEST,)


def test_change_request_without_alternate_is_420_unless_empty() -> None:
    responder = StunResponder((IP1, P1))
    [ok] = responder.handle(request(change(False, False)), CLIENT, (IP1, P1))
    assert decode(ok.data).cls == MessageClass.SUCCESS
    [refused] = responder.handle(request(change(False, True)), CLIENT, (IP1, P1))
    assert decode(refused.data).error_code == (420, "Unknown Attribute")


def test_unknown_comprehension_required_attribute_gets_420() -> None:
    data = request(Attribute(0x0026, bytes(8)), Attribute(0x7ABC, b"x"), Attribute(0xC001, b"y"))
    [reply] = StunResponder((IP1, P1)).handle(data, CLIENT, (IP1, P1))
    msg = decode(reply.data)
    assert (msg.cls, msg.transaction_id) == (MessageClass.ERROR, TID)
    assert msg.error_code is not None and msg.error_code.code == 420
    assert msg.get(AttrType.UNKNOWN_ATTRIBUTES) == (0x0026, 0x7ABC)  # optional 0xC001 not listed


def test_ice_style_request_is_answered() -> None:
    """USERNAME, PRIORITY, ICE-CONTROLLING, MESSAGE-INTEGRITY: understood, not checked."""
    attrs = (
        Attribute(AttrType.USERNAME, "a:b"),
        Attribute(AttrType.PRIORITY, 1),
        Attribute(AttrType.ICE_CONTROLLING, 7),
    )
    data = encode(StunMessage(Method.BINDING, MessageClass.REQUEST, TID, attrs), integrity_key=b"k")
    [reply] = StunResponder((IP1, P1)).handle(data, CLIENT, (IP1, P1))
    assert decode(reply.data).cls == MessageClass.SUCCESS


def test_malformed_attribute_gets_400() -> None:
    body = struct.pack("!HH", AttrType.XOR_MAPPED_ADDRESS, 8) + b"\x00\x07\x00\x01" + bytes(4)
    data = struct.pack("!HHI", 0x0001, len(body), MAGIC_COOKIE) + TID + body
    [reply] = StunResponder((IP1, P1)).handle(data, CLIENT, (IP1, P1))
    msg = decode(reply.data)
    assert msg.error_code is not None and msg.error_code.code == 400
    assert msg.transaction_id == TID


def test_unsupported_method_gets_400() -> None:
    [reply] = StunResponder((IP1, P1)).handle(request(method=0x003), CLIENT, (IP1, P1))
    msg = decode(reply.data)
    assert msg.method == 0x003 and msg.error_code is not None and msg.error_code.code == 400


def test_response_port(rfc5780: StunResponder) -> None:
    """RFC 5780 §7.5: RESPONSE-PORT sends the answer to another port of the same IP."""
    [reply] = rfc5780.handle(request(Attribute(AttrType.RESPONSE_PORT, 41000)), CLIENT, (IP1, P1))
    assert reply.remote == (CLIENT[0], 41000)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"OPTIONS sip:s@192.0.2.1 SIP/2.0\r\n\r\n",
        bytes.fromhex("80000001") + bytes(16),
        request(cls=MessageClass.INDICATION),
        request(cls=MessageClass.SUCCESS),
        request(cls=MessageClass.ERROR),
        request()[:-1] + b"\x00",  # bad FINGERPRINT: silently discarded
    ],
    ids=["empty", "crlf", "sip", "rtp", "indication", "success", "error", "bad-fingerprint"],
)
def test_dropped(rfc5780: StunResponder, data: bytes) -> None:
    assert rfc5780.handle(data, CLIENT, (IP1, P1)) == []
    assert binding_response(data, CLIENT) is None


def test_classic_rfc3489_request(rfc5780: StunResponder) -> None:
    """RFC 8489 §11: no cookie -> echo the 128-bit id, MAPPED-ADDRESS, no FINGERPRINT;
    RFC 3489's SOURCE-ADDRESS and CHANGED-ADDRESS instead of RFC 5780's attributes."""
    classic_id = bytes.fromhex("0277b25bff606565e5754572d2a7a41c")
    data = bytes.fromhex("00010008") + classic_id + bytes.fromhex("0003000400000004")
    [reply] = rfc5780.handle(data, CLIENT, (IP1, P1))
    assert reply.local == (IP2, P1)
    assert reply.data[4:20] == classic_id
    msg = decode(reply.data)
    assert msg.classic and msg.cls == MessageClass.SUCCESS
    assert {a.type for a in msg.attributes} == {
        AttrType.MAPPED_ADDRESS,
        AttrType.SOURCE_ADDRESS,
        AttrType.CHANGED_ADDRESS,
    }
    assert msg.address(AttrType.MAPPED_ADDRESS) == CLIENT
    assert msg.address(AttrType.SOURCE_ADDRESS) == (IP2, P1)
    assert msg.address(AttrType.CHANGED_ADDRESS) == (IP2, P2)


def test_binding_response_on_a_shared_port() -> None:
    """RFC 7983 / RFC 5626: what the SIP and RTP shells answer."""
    answer = binding_response(request(), CLIENT)
    assert answer is not None
    msg = decode(answer)
    assert msg.address(AttrType.XOR_MAPPED_ADDRESS) == CLIENT
    assert msg.get(AttrType.OTHER_ADDRESS) is None
    classic = bytes.fromhex("00010000") + bytes(range(16))
    assert binding_response(classic, CLIENT) is None  # no cookie: not STUN on a shared port


@given(st.binary(max_size=120), st.booleans())
def test_responder_never_raises(tail: bytes, with_header: bool) -> None:
    """Whatever arrives, the responder answers or drops; it never raises."""
    data = tail
    if with_header:
        body = tail + bytes(-len(tail) % 4)
        data = struct.pack("!HHI", 0x0001, len(body), MAGIC_COOKIE) + TID + body
    for reply in StunResponder((IP1, P1), (IP2, P2)).handle(data, CLIENT, (IP1, P1)):
        assert decode(reply.data).transaction_id == TID


def test_answer_stun_on_takes_socket_addresses() -> None:
    """The SIP/RTP shells pass recvfrom()'s address: a 2-tuple or an IPv6 4-tuple."""
    v4 = answer_stun_on(request(), ("192.0.2.5", 5060))
    assert v4 is not None and decode(v4).address(AttrType.XOR_MAPPED_ADDRESS) == ("192.0.2.5", 5060)
    v6 = answer_stun_on(request(), ("2001:db8::5", 5060, 0, 0))
    assert v6 is not None
    assert decode(v6).address(AttrType.XOR_MAPPED_ADDRESS) == ("2001:db8::5", 5060)
    assert answer_stun_on(b"\r\n\r\n", ("192.0.2.5", 5060)) is None

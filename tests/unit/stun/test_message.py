"""STUN codec against RFC 5769's test vectors, round trips, and random bytes."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callway.stun.message import (
    MAGIC_COOKIE,
    Attribute,
    AttrType,
    ChangeRequest,
    ErrorCode,
    MessageClass,
    Method,
    StunAttributeError,
    StunError,
    StunMessage,
    TransportAddress,
    decode,
    encode,
    fingerprint_of,
    is_stun,
    message_type,
    short_term_key,
    split_type,
    verify_integrity,
)

# RFC 5769 §2: every vector shares this transaction id and password.
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
KEY = short_term_key("VOkJxbRl1RmTxUk/WvJxBt")

# RFC 5769 §2.1 Sample Request (padding bytes are spaces, 0x20).
SAMPLE_REQUEST = bytes.fromhex(
    "00010058"  # Request type and message length
    "2112a442"  # Magic cookie
    "b7e7a701bc34d686fa87dfae"  # Transaction ID
    "80220010"  # SOFTWARE attribute header
    "5354554e207465737420636c69656e74"  # "STUN test client"
    "00240004"  # PRIORITY attribute header
    "6e0001ff"
    "80290008"  # ICE-CONTROLLED attribute header
    "932ff9b151263b36"
    "00060009"  # USERNAME attribute header
    "6576746a3a68367659202020"  # "evtj:h6vY" + padding
    "00080014"  # MESSAGE-INTEGRITY attribute header
    "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004"  # FINGERPRINT attribute header
    "e57a3bcf"
)

# RFC 5769 §2.2 Sample IPv4 Response.
SAMPLE_IPV4_RESPONSE = bytes.fromhex(
    "0101003c"  # Response type and message length
    "2112a442"  # Magic cookie
    "b7e7a701bc34d686fa87dfae"  # Transaction ID
    "8022000b"  # SOFTWARE attribute header
    "7465737420766563746f7220"  # "test vector" + padding
    "00200008"  # XOR-MAPPED-ADDRESS attribute header
    "0001a147"  # Address family (IPv4) and xor'd mapped port number
    "e112a643"  # Xor'd mapped IPv4 address
    "00080014"  # MESSAGE-INTEGRITY attribute header
    "2b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004"  # FINGERPRINT attribute header
    "c07d4c96"
)

# RFC 5769 §2.3 Sample IPv6 Response.
SAMPLE_IPV6_RESPONSE = bytes.fromhex(
    "01010048"  # Response type and message length
    "2112a442"  # Magic cookie
    "b7e7a701bc34d686fa87dfae"  # Transaction ID
    "8022000b"  # SOFTWARE attribute header
    "7465737420766563746f7220"  # "test vector" + padding
    "00200014"  # XOR-MAPPED-ADDRESS attribute header
    "0002a147"  # Address family (IPv6) and xor'd mapped port number
    "0113a9faa5d3f179bc25f4b5bed2b9d9"  # Xor'd mapped IPv6 address
    "00080014"  # MESSAGE-INTEGRITY attribute header
    "a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004"  # FINGERPRINT attribute header
    "c8fb0b4c"
)

VECTORS = [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE]


# -- RFC 5769 -----------------------------------------------------------------
def test_sample_request_fields() -> None:
    msg = decode(SAMPLE_REQUEST)
    assert (msg.method, msg.cls, msg.transaction_id) == (Method.BINDING, MessageClass.REQUEST, TID)
    assert msg.cookie == MAGIC_COOKIE and not msg.classic
    assert msg.text(AttrType.SOFTWARE) == "STUN test client"
    assert msg.get(AttrType.PRIORITY) == 0x6E0001FF
    assert msg.get(AttrType.ICE_CONTROLLED) == 0x932FF9B151263B36
    assert msg.text(AttrType.USERNAME) == "evtj:h6vY"


def test_sample_ipv4_response_fields() -> None:
    msg = decode(SAMPLE_IPV4_RESPONSE)
    assert msg.cls == MessageClass.SUCCESS
    assert msg.text(AttrType.SOFTWARE) == "test vector"
    assert msg.address(AttrType.XOR_MAPPED_ADDRESS) == ("192.0.2.1", 32853)


def test_sample_ipv6_response_fields() -> None:
    msg = decode(SAMPLE_IPV6_RESPONSE)
    expected = TransportAddress("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    assert msg.address(AttrType.XOR_MAPPED_ADDRESS) == expected


@pytest.mark.parametrize("data", VECTORS, ids=["request", "ipv4", "ipv6"])
def test_vectors_integrity_and_fingerprint_verify(data: bytes) -> None:
    assert verify_integrity(data, KEY)
    assert not verify_integrity(data, b"wrong password")
    fp_offset = len(data) - 8
    assert int.from_bytes(data[-4:], "big") == fingerprint_of(data[:fp_offset])
    assert is_stun(data)


@pytest.mark.parametrize("data", VECTORS, ids=["request", "ipv4", "ipv6"])
def test_vectors_reencode_byte_exact(data: bytes) -> None:
    """Our MESSAGE-INTEGRITY and FINGERPRINT computations reproduce the RFC's bytes."""
    assert encode(decode(data), integrity_key=KEY, pad=b" ") == data


@pytest.mark.parametrize("data", VECTORS, ids=["request", "ipv4", "ipv6"])
def test_corrupted_fingerprint_is_rejected(data: bytes) -> None:
    broken = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(StunError, match="FINGERPRINT"):
        decode(broken)


def test_corrupted_body_fails_integrity_and_fingerprint() -> None:
    broken = bytearray(SAMPLE_IPV4_RESPONSE)
    broken[40] ^= 0x01  # inside XOR-MAPPED-ADDRESS
    assert not verify_integrity(bytes(broken), KEY)
    with pytest.raises(StunError):
        decode(bytes(broken))


# -- message type (RFC 8489 §5) ----------------------------------------------
@pytest.mark.parametrize(
    ("method", "cls", "wire"),
    [
        (Method.BINDING, MessageClass.REQUEST, 0x0001),
        (Method.BINDING, MessageClass.INDICATION, 0x0011),
        (Method.BINDING, MessageClass.SUCCESS, 0x0101),
        (Method.BINDING, MessageClass.ERROR, 0x0111),
        (0x003, MessageClass.REQUEST, 0x0003),  # TURN Allocate
        (0xFFF, MessageClass.ERROR, 0x3FFF),
    ],
)
def test_message_type_interleaving(method: int, cls: MessageClass, wire: int) -> None:
    assert message_type(method, cls) == wire
    assert split_type(wire) == (method, cls)


# -- round trips ---------------------------------------------------------------
def _full_message() -> StunMessage:
    return StunMessage(
        Method.BINDING,
        MessageClass.ERROR,
        TID,
        (
            Attribute(AttrType.MAPPED_ADDRESS, TransportAddress("198.51.100.7", 5060)),
            Attribute(AttrType.XOR_MAPPED_ADDRESS, TransportAddress("2001:db8::1", 40000)),
            Attribute(AttrType.RESPONSE_ORIGIN, TransportAddress("203.0.113.1", 3478)),
            Attribute(AttrType.OTHER_ADDRESS, TransportAddress("203.0.113.2", 3479)),
            Attribute(AttrType.CHANGE_REQUEST, ChangeRequest(change_ip=True, change_port=False)),
            Attribute(AttrType.SOFTWARE, "callway ☎"),
            Attribute(AttrType.ERROR_CODE, ErrorCode(420, "Unknown Attribute")),
            Attribute(AttrType.UNKNOWN_ATTRIBUTES, (0x0026, 0x7777, 0x0003)),
            Attribute(AttrType.RESPONSE_PORT, 6000),
            Attribute(0x7F00, b"\x01\x02\x03"),  # unknown: kept as bytes
        ),
    )


def test_round_trip_all_attribute_kinds() -> None:
    msg = _full_message()
    data = encode(msg, integrity_key=b"secret")
    assert len(data) % 4 == 0 and is_stun(data)
    back = decode(data)
    assert back.attributes[:-2] == msg.attributes
    assert [a.type for a in back.attributes[-2:]] == [
        AttrType.MESSAGE_INTEGRITY,
        AttrType.FINGERPRINT,
    ]
    assert verify_integrity(data, b"secret")
    assert back.error_code == ErrorCode(420, "Unknown Attribute")
    assert back.change_request == ChangeRequest(True, False)
    # MESSAGE-INTEGRITY / FINGERPRINT in ``attributes`` are recomputed, not copied
    assert encode(back, integrity_key=b"secret") == data


def test_without_fingerprint() -> None:
    msg = StunMessage(Method.BINDING, MessageClass.REQUEST, TID)
    data = encode(msg, fingerprint=False)
    assert data == bytes.fromhex("000100002112a442") + TID
    assert decode(data) == msg


def test_xor_mapped_address_wire_form() -> None:
    """RFC 8489 §14.2: port xor 0x2112, IPv4 address xor the magic cookie."""
    attr = Attribute(AttrType.XOR_MAPPED_ADDRESS, TransportAddress("192.0.2.1", 32853))
    data = encode(
        StunMessage(Method.BINDING, MessageClass.SUCCESS, TID, (attr,)), fingerprint=False
    )
    assert data[20:] == bytes.fromhex("002000080001a147e112a643")


def test_classic_rfc3489_message_keeps_its_128_bit_id() -> None:
    """RFC 3489 requests have no magic cookie; the whole 16 bytes are the id."""
    data = bytes.fromhex("000100080177b25bff606565e5754572d2a7a41c0003000400000006")
    msg = decode(data)
    assert msg.classic and msg.cookie == 0x0177B25B
    assert msg.change_request == ChangeRequest(True, True)
    assert not is_stun(data)  # demultiplexing on shared ports wants the cookie
    assert encode(msg, fingerprint=False) == data


def test_attributes_after_message_integrity_are_ignored() -> None:
    msg = StunMessage(Method.BINDING, MessageClass.REQUEST, TID)
    data = encode(msg, integrity_key=b"k", fingerprint=False)
    extra = struct.pack("!HH", AttrType.SOFTWARE, 4) + b"late"
    tampered = data[:2] + struct.pack("!H", len(data) - 20 + 8) + data[4:] + extra
    assert decode(tampered).text(AttrType.SOFTWARE) is None


def test_duplicate_attribute_first_wins() -> None:
    attrs = (Attribute(AttrType.SOFTWARE, "one"), Attribute(AttrType.SOFTWARE, "two"))
    data = encode(StunMessage(Method.BINDING, MessageClass.REQUEST, TID, attrs))
    assert decode(data).text(AttrType.SOFTWARE) == "one"


# -- malformed input -------------------------------------------------------------
def _with_attrs(body: bytes, msg_type: int = 0x0001) -> bytes:
    return struct.pack("!HHI", msg_type, len(body), MAGIC_COOKIE) + TID + body


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "shorter"),
        (bytes(19), "shorter"),
        (b"\x40" + bytes(19), "most significant"),
        (struct.pack("!HHI", 1, 2, MAGIC_COOKIE) + TID + b"\x00\x00", "multiple of 4"),
        (struct.pack("!HHI", 1, 8, MAGIC_COOKIE) + TID + bytes(4), "follow"),
    ],
)
def test_bad_headers(data: bytes, match: str) -> None:
    with pytest.raises(StunError, match=match) as info:
        decode(data)
    assert not isinstance(info.value, StunAttributeError)


@pytest.mark.parametrize(
    "body",
    [
        struct.pack("!HH", AttrType.SOFTWARE, 8) + b"abcd",  # overruns
        struct.pack("!HH", AttrType.XOR_MAPPED_ADDRESS, 8) + b"\x00\x03\x00\x01" + bytes(4),
        struct.pack("!HH", AttrType.MAPPED_ADDRESS, 8) + b"\x00\x02\x00\x01" + bytes(4),
        struct.pack("!HH", AttrType.MAPPED_ADDRESS, 2) + b"\x00\x01\x00\x00",
        struct.pack("!HH", AttrType.CHANGE_REQUEST, 2) + bytes(4),
        struct.pack("!HH", AttrType.ERROR_CODE, 4) + b"\x00\x00\x02\x00",  # class 2
        struct.pack("!HH", AttrType.ERROR_CODE, 4) + b"\x00\x00\x04\x64",  # number 100
        struct.pack("!HH", AttrType.UNKNOWN_ATTRIBUTES, 3) + bytes(4),
        struct.pack("!HH", AttrType.SOFTWARE, 2) + b"\xff\xfe\x00\x00",  # not UTF-8
        struct.pack("!HH", AttrType.PRIORITY, 2) + bytes(4),
        struct.pack("!HH", AttrType.MESSAGE_INTEGRITY, 4) + bytes(4),
        struct.pack("!HH", AttrType.FINGERPRINT, 4) + bytes(4) + struct.pack("!HH", 0x8022, 0),
    ],
)
def test_bad_attributes_carry_the_header(body: bytes) -> None:
    with pytest.raises(StunAttributeError) as info:
        decode(_with_attrs(body))
    header = info.value.header
    assert (header.method, header.cls, header.transaction_id) == (1, MessageClass.REQUEST, TID)


def test_encode_rejects_bad_values() -> None:
    for attr in [
        Attribute(AttrType.MAPPED_ADDRESS, "not an address"),
        Attribute(AttrType.MAPPED_ADDRESS, TransportAddress("nowhere", 1)),
        Attribute(AttrType.ERROR_CODE, ErrorCode(200, "OK")),
        Attribute(AttrType.SOFTWARE, b"bytes"),
        Attribute(AttrType.PRIORITY, -1),
        Attribute(AttrType.SOFTWARE, "x" * 800),
    ]:
        with pytest.raises(StunError):
            encode(StunMessage(Method.BINDING, MessageClass.REQUEST, TID, (attr,)))
    with pytest.raises(StunError):
        encode(StunMessage(Method.BINDING, MessageClass.REQUEST, b"short"))


# -- RFC 7983 demultiplexing ------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        b"OPTIONS sip:s@127.0.0.1 SIP/2.0\r\n\r\n",
        b"\r\n\r\n",  # RFC 5626 CRLF keepalive
        bytes.fromhex("80000001") + bytes(16),  # RTP version 2
        bytes.fromhex("16fefd") + bytes(30),  # DTLS
        bytes.fromhex("00010000") + bytes(16),  # no magic cookie
    ],
)
def test_is_stun_rejects_other_protocols(data: bytes) -> None:
    assert not is_stun(data)


# -- Hypothesis ---------------------------------------------------------------------
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_stun_error(data: bytes) -> None:
    with contextlib.suppress(StunError):
        decode(data)


@given(
    st.integers(0, 0x3FFF),
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=6),
    st.binary(max_size=12),
)
def test_random_attributes_raise_only_stun_error(
    msg_type: int, attrs: list[tuple[int, bytes]], tail: bytes
) -> None:
    """Well-framed headers with random attributes reach every value decoder."""
    body = b"".join(struct.pack("!HH", t, len(v)) + v + bytes(-len(v) % 4) for t, v in attrs) + tail
    body += bytes(-len(body) % 4)
    try:
        msg = decode(_with_attrs(body, msg_type))
    except StunError:
        return
    encode(msg)  # whatever decodes re-encodes


@given(
    st.sampled_from(list(MessageClass)),
    st.binary(min_size=12, max_size=12),
    st.ip_addresses(),
    st.integers(0, 0xFFFF),
    st.text(max_size=40),
)
def test_round_trip_property(
    cls: MessageClass, tid: bytes, ip: object, port: int, software: str
) -> None:
    address = TransportAddress(str(ip), port)
    msg = StunMessage(
        Method.BINDING,
        cls,
        tid,
        (
            Attribute(AttrType.XOR_MAPPED_ADDRESS, address),
            Attribute(AttrType.MAPPED_ADDRESS, address),
            Attribute(AttrType.SOFTWARE, software),
        ),
    )
    back = decode(encode(msg))
    assert back.attributes[:3] == msg.attributes

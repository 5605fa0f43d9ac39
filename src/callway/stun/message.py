"""STUN message codec (RFC 8489, which obsoletes RFC 5389; RFC 5780; RFC 3489).

Wire format (RFC 8489 §5): a 20-byte header — two zero bits, the 14-bit
message type (method and class interleaved, §5 figure 3), the 16-bit length
of the attributes, the magic cookie 0x2112A442 and a 96-bit transaction id —
then type-length-value attributes, each padded to a multiple of 4 bytes
(§14).  A message whose cookie field is not the magic cookie comes from an
RFC 3489 ("classic") agent; it is still decoded (its 128-bit transaction id
is the cookie field plus the 96 bits), so a server can answer it
(RFC 8489 §11).

Pure functions only: no sockets, no clock.  ``decode`` raises
:class:`StunError` for anything malformed, and :class:`StunAttributeError`
(carrying the parsed header) when the header was sound but an attribute was
not, so a server can still answer 400 (RFC 8489 §6.3.1.1).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import secrets
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

MAGIC_COOKIE = 0x2112A442
FINGERPRINT_XOR = 0x5354554E  # "STUN" (RFC 8489 §14.7)
HEADER_LENGTH = 20
_HEADER = struct.Struct("!HHI12s")
_ATTR_HEADER = struct.Struct("!HH")
_INTEGRITY_LENGTH = 4 + 20  # attribute header + HMAC-SHA1
_FINGERPRINT_LENGTH = 4 + 4
_FAMILY_IPV4 = 0x01
_FAMILY_IPV6 = 0x02


class StunError(ValueError):
    """Bytes that are not a well-formed STUN message (drop them)."""


class StunAttributeError(StunError):
    """The header was sound but an attribute was not (RFC 8489 §6.3.1.1: answer 400).

    ``header`` is the message as far as it could be read: method, class,
    cookie and transaction id, without attributes.
    """

    def __init__(self, reason: str, header: StunMessage) -> None:
        super().__init__(reason)
        self.header = header


class MessageClass(IntEnum):
    """The two class bits C1 C0 (RFC 8489 §5)."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


class Method(IntEnum):
    """STUN methods (RFC 8489 §18.2); TURN's are defined by RFC 8656."""

    BINDING = 0x001


class AttrType(IntEnum):
    """Attribute types this codec understands (RFC 8489 §18.3, RFC 5780 §7, RFC 8445 §16)."""

    MAPPED_ADDRESS = 0x0001
    RESPONSE_ADDRESS = 0x0002  # RFC 3489 only; never honoured
    CHANGE_REQUEST = 0x0003  # RFC 5780 §7.2
    SOURCE_ADDRESS = 0x0004  # RFC 3489 §11.2.5
    CHANGED_ADDRESS = 0x0005  # RFC 3489 §11.2.3
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    REALM = 0x0014
    NONCE = 0x0015
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    PRIORITY = 0x0024  # RFC 8445
    USE_CANDIDATE = 0x0025  # RFC 8445
    RESPONSE_PORT = 0x0027  # RFC 5780 §7.5
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029  # RFC 8445
    ICE_CONTROLLING = 0x802A  # RFC 8445
    RESPONSE_ORIGIN = 0x802B  # RFC 5780 §7.3
    OTHER_ADDRESS = 0x802C  # RFC 5780 §7.4


def is_comprehension_required(attr_type: int) -> bool:
    """Types 0x0000-0x7FFF must be understood by the receiver (RFC 8489 §14)."""
    return attr_type < 0x8000


class TransportAddress(NamedTuple):
    """An IP address (text form) and port, as carried by the address attributes."""

    host: str
    port: int


class ChangeRequest(NamedTuple):
    """CHANGE-REQUEST flags (RFC 5780 §7.2): "change IP" (0x4) and "change port" (0x2)."""

    change_ip: bool = False
    change_port: bool = False


class ErrorCode(NamedTuple):
    """ERROR-CODE value (RFC 8489 §14.8): a code 300-699 and a reason phrase."""

    code: int
    reason: str


AttrValue = TransportAddress | ChangeRequest | ErrorCode | tuple[int, ...] | str | int | bytes


class Attribute(NamedTuple):
    """One attribute: its type and decoded value (raw bytes for unknown types)."""

    type: int
    value: AttrValue


@dataclass(frozen=True, slots=True)
class StunMessage:
    """A decoded STUN message.

    ``transaction_id`` is the 96-bit id; ``cookie`` is the magic cookie, or
    for an RFC 3489 message the first 32 bits of its 128-bit id.
    MESSAGE-INTEGRITY and FINGERPRINT appear in ``attributes`` after
    ``decode``; ``encode`` ignores them there and computes its own.
    """

    method: int
    cls: MessageClass
    transaction_id: bytes
    attributes: tuple[Attribute, ...] = ()
    cookie: int = MAGIC_COOKIE

    @property
    def classic(self) -> bool:
        """True for a message from an RFC 3489 agent (no magic cookie; RFC 8489 §11)."""
        return self.cookie != MAGIC_COOKIE

    def get(self, attr_type: int) -> AttrValue | None:
        """The first value of ``attr_type`` (RFC 8489 §14: later duplicates are ignored)."""
        for attr in self.attributes:
            if attr.type == attr_type:
                return attr.value
        return None

    def address(self, attr_type: int) -> TransportAddress | None:
        """The value of an address attribute (XOR-MAPPED-ADDRESS already un-xored)."""
        value = self.get(attr_type)
        return value if isinstance(value, TransportAddress) else None

    def text(self, attr_type: int) -> str | None:
        """The value of a UTF-8 text attribute (SOFTWARE, USERNAME, REALM, NONCE)."""
        value = self.get(attr_type)
        return value if isinstance(value, str) else None

    @property
    def error_code(self) -> ErrorCode | None:
        """ERROR-CODE, if present."""
        value = self.get(AttrType.ERROR_CODE)
        return value if isinstance(value, ErrorCode) else None

    @property
    def change_request(self) -> ChangeRequest | None:
        """CHANGE-REQUEST, if present."""
        value = self.get(AttrType.CHANGE_REQUEST)
        return value if isinstance(value, ChangeRequest) else None


def new_transaction_id() -> bytes:
    """A fresh random 96-bit transaction id (RFC 8489 §5: uniformly random)."""
    return secrets.token_bytes(12)


# --------------------------------------------------------------------------
# message type (RFC 8489 §5, figure 3)
# --------------------------------------------------------------------------
def message_type(method: int, cls: MessageClass) -> int:
    """Interleave the 12 method bits with the class bits C0 (bit 4) and C1 (bit 8)."""
    if not 0 <= method <= 0xFFF:
        raise StunError(f"method {method:#x} does not fit in 12 bits")
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((cls & 0b01) << 4)
        | ((cls & 0b10) << 7)
    )


def split_type(msg_type: int) -> tuple[int, MessageClass]:
    """The inverse of :func:`message_type`."""
    method = (msg_type & 0x000F) | ((msg_type >> 1) & 0x0070) | ((msg_type >> 2) & 0x0F80)
    cls = MessageClass(((msg_type >> 4) & 0b01) | ((msg_type >> 7) & 0b10))
    return method, cls


# --------------------------------------------------------------------------
# attribute values
# --------------------------------------------------------------------------
def _xor_pad(cookie: int, transaction_id: bytes) -> bytes:
    return struct.pack("!I", cookie) + transaction_id


def _decode_address(value: bytes, xor: bytes | None) -> TransportAddress:
    """MAPPED-ADDRESS family (RFC 8489 §14.1); XOR-MAPPED-ADDRESS when ``xor`` (§14.2)."""
    if len(value) < 4:
        raise ValueError("address attribute shorter than 4 bytes")
    family, port = value[1], int.from_bytes(value[2:4], "big")
    raw = value[4:]
    if (family == _FAMILY_IPV4 and len(raw) == 4) or (family == _FAMILY_IPV6 and len(raw) == 16):
        pass
    else:
        raise ValueError(f"address family {family:#x} with {len(raw)} address bytes")
    if xor is not None:
        port ^= int.from_bytes(xor[:2], "big")
        raw = bytes(a ^ b for a, b in zip(raw, xor, strict=False))
    host = ipaddress.IPv4Address(raw) if family == _FAMILY_IPV4 else ipaddress.IPv6Address(raw)
    return TransportAddress(str(host), port)


def _encode_address(value: AttrValue, xor: bytes | None) -> bytes:
    if not (isinstance(value, tuple) and len(value) == 2):
        raise StunError(f"address attribute needs (host, port), not {value!r}")
    host, port = value
    if not isinstance(host, str) or not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise StunError(f"bad address {value!r}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError as exc:
        raise StunError(f"bad address {host!r}") from exc
    raw = ip.packed
    if xor is not None:
        port ^= int.from_bytes(xor[:2], "big")
        raw = bytes(a ^ b for a, b in zip(raw, xor, strict=False))
    family = _FAMILY_IPV4 if ip.version == 4 else _FAMILY_IPV6
    return struct.pack("!BBH", 0, family, port) + raw


def _decode_error_code(value: bytes) -> ErrorCode:
    """ERROR-CODE (RFC 8489 §14.8): 21 reserved bits, class 3-6, number 0-99, reason."""
    if len(value) < 4:
        raise ValueError("ERROR-CODE shorter than 4 bytes")
    klass, number = value[2] & 0x07, value[3]
    if not 3 <= klass <= 6 or number > 99:
        raise ValueError(f"ERROR-CODE class {klass} number {number}")
    return ErrorCode(klass * 100 + number, value[4:].decode("utf-8"))


def _encode_error_code(value: AttrValue) -> bytes:
    if not isinstance(value, ErrorCode) or not 300 <= value.code <= 699:
        raise StunError(f"ERROR-CODE needs ErrorCode(300..699, reason), not {value!r}")
    return struct.pack("!HBB", 0, value.code // 100, value.code % 100) + value.reason.encode()


def _decode_change_request(value: bytes) -> ChangeRequest:
    """CHANGE-REQUEST (RFC 5780 §7.2): 32 bits, flag A (0x4) change IP, B (0x2) port."""
    if len(value) != 4:
        raise ValueError(f"CHANGE-REQUEST of {len(value)} bytes")
    flags = value[3]
    return ChangeRequest(bool(flags & 0x04), bool(flags & 0x02))


def _encode_change_request(value: AttrValue) -> bytes:
    if not isinstance(value, ChangeRequest):
        raise StunError(f"CHANGE-REQUEST needs ChangeRequest, not {value!r}")
    return struct.pack("!I", (0x04 if value.change_ip else 0) | (0x02 if value.change_port else 0))


def _decode_unknown_attributes(value: bytes) -> tuple[int, ...]:
    """UNKNOWN-ATTRIBUTES (RFC 8489 §14.9): a list of 16-bit types."""
    if len(value) % 2:
        raise ValueError("UNKNOWN-ATTRIBUTES of odd length")
    return tuple(int.from_bytes(value[i : i + 2], "big") for i in range(0, len(value), 2))


def _encode_unknown_attributes(value: AttrValue) -> bytes:
    if not isinstance(value, tuple) or not all(
        isinstance(t, int) and 0 <= t <= 0xFFFF for t in value
    ):
        raise StunError(f"UNKNOWN-ATTRIBUTES needs a tuple of types, not {value!r}")
    return b"".join(struct.pack("!H", t) for t in value)


def _uint_codec(
    size: int, wire: int
) -> tuple[Callable[[bytes], int], Callable[[AttrValue], bytes]]:
    """An unsigned integer of ``size`` bytes sent in ``wire`` bytes (RESPONSE-PORT pads)."""

    def decode(value: bytes) -> int:
        if len(value) != wire:
            raise ValueError(f"{len(value)} bytes where {wire} are expected")
        return int.from_bytes(value[:size], "big")

    def encode(value: AttrValue) -> bytes:
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
            raise StunError(f"needs an unsigned {8 * size}-bit integer, not {value!r}")
        return value.to_bytes(size, "big") + bytes(wire - size)

    return decode, encode


def _decode_text(value: bytes) -> str:
    return value.decode("utf-8")


def _encode_text(value: AttrValue) -> bytes:
    if not isinstance(value, str):
        raise StunError(f"needs text, not {value!r}")
    data = value.encode()
    if len(data) > 763:  # RFC 8489 §14.3/§14.14: fewer than 128 characters, <= 763 bytes
        raise StunError("text attribute longer than 763 bytes")
    return data


def _decode_raw(value: bytes) -> bytes:
    return value


def _encode_raw(value: AttrValue) -> bytes:
    if not isinstance(value, bytes):
        raise StunError(f"needs bytes, not {value!r}")
    return value


Decoder = Callable[[bytes], AttrValue]
Encoder = Callable[[AttrValue], bytes]
_u32 = _uint_codec(4, 4)
_u64 = _uint_codec(8, 8)
_u16_padded = _uint_codec(2, 4)
_TEXT = (_decode_text, _encode_text)
_RAW = (_decode_raw, _encode_raw)

# Non-address attributes: type -> (decode, encode).  Address attributes are
# handled apart because XOR-MAPPED-ADDRESS needs the header.
_VALUE_CODECS: dict[int, tuple[Decoder, Encoder]] = {
    AttrType.CHANGE_REQUEST: (_decode_change_request, _encode_change_request),
    AttrType.USERNAME: _TEXT,
    AttrType.MESSAGE_INTEGRITY: _RAW,
    AttrType.ERROR_CODE: (_decode_error_code, _encode_error_code),
    AttrType.UNKNOWN_ATTRIBUTES: (_decode_unknown_attributes, _encode_unknown_attributes),
    AttrType.REALM: _TEXT,
    AttrType.NONCE: _TEXT,
    AttrType.MESSAGE_INTEGRITY_SHA256: _RAW,
    AttrType.USERHASH: _RAW,
    AttrType.PRIORITY: _u32,
    AttrType.USE_CANDIDATE: _RAW,
    AttrType.RESPONSE_PORT: _u16_padded,
    AttrType.SOFTWARE: _TEXT,
    AttrType.FINGERPRINT: _u32,
    AttrType.ICE_CONTROLLED: _u64,
    AttrType.ICE_CONTROLLING: _u64,
}
_ADDRESS_TYPES = frozenset(
    {
        AttrType.MAPPED_ADDRESS,
        AttrType.RESPONSE_ADDRESS,
        AttrType.SOURCE_ADDRESS,
        AttrType.CHANGED_ADDRESS,
        AttrType.ALTERNATE_SERVER,
        AttrType.RESPONSE_ORIGIN,
        AttrType.OTHER_ADDRESS,
    }
)


def _decode_value(attr_type: int, value: bytes, xor: bytes) -> AttrValue:
    if attr_type == AttrType.XOR_MAPPED_ADDRESS:
        return _decode_address(value, xor)
    if attr_type in _ADDRESS_TYPES:
        return _decode_address(value, None)
    codec = _VALUE_CODECS.get(attr_type)
    return value if codec is None else codec[0](value)


def _encode_value(attr_type: int, value: AttrValue, xor: bytes) -> bytes:
    if attr_type == AttrType.XOR_MAPPED_ADDRESS:
        return _encode_address(value, xor)
    if attr_type in _ADDRESS_TYPES:
        return _encode_address(value, None)
    codec = _VALUE_CODECS.get(attr_type)
    return _encode_raw(value) if codec is None else codec[1](value)


# --------------------------------------------------------------------------
# framing
# --------------------------------------------------------------------------
def _padded(length: int) -> int:
    """Attribute values are padded to a multiple of 4 bytes (RFC 8489 §14)."""
    return (length + 3) & ~3


def _read_header(data: bytes) -> StunMessage:
    """Check the header (RFC 8489 §6.3) and return it as an attribute-less message."""
    if len(data) < HEADER_LENGTH:
        raise StunError(f"{len(data)} bytes: shorter than the 20-byte STUN header")
    msg_type, length, cookie, transaction_id = _HEADER.unpack_from(data)
    if msg_type & 0xC000:
        raise StunError("the two most significant bits of a STUN message must be zero")
    if length % 4:
        raise StunError(f"message length {length} is not a multiple of 4")
    if HEADER_LENGTH + length != len(data):
        raise StunError(f"message length {length} but {len(data) - HEADER_LENGTH} bytes follow")
    method, cls = split_type(msg_type)
    return StunMessage(method, cls, transaction_id, (), cookie)


def _walk(data: bytes, header: StunMessage) -> Iterator[tuple[int, int, bytes]]:
    """(type, offset, value) for each attribute, checking each fits (RFC 8489 §14)."""
    offset = HEADER_LENGTH
    while offset < len(data):
        if offset + 4 > len(data):
            raise StunAttributeError("truncated attribute header", header)
        attr_type, length = _ATTR_HEADER.unpack_from(data, offset)
        end = offset + 4 + length
        if offset + 4 + _padded(length) > len(data):
            raise StunAttributeError(f"attribute {attr_type:#06x} overruns the message", header)
        yield attr_type, offset, data[offset + 4 : end]
        offset += 4 + _padded(length)


def _with_length(data: bytes, length: int) -> bytes:
    return data[:2] + struct.pack("!H", length) + data[4:]


def fingerprint_of(data: bytes) -> int:
    """FINGERPRINT over ``data`` (the message before that attribute; RFC 8489 §14.7).

    The header length is taken to include the 8-byte FINGERPRINT attribute.
    """
    covered = _with_length(data, len(data) - HEADER_LENGTH + _FINGERPRINT_LENGTH)
    return binascii.crc32(covered) ^ FINGERPRINT_XOR


def integrity_of(data: bytes, key: bytes) -> bytes:
    """MESSAGE-INTEGRITY over ``data`` (the message before that attribute; RFC 8489 §14.5).

    HMAC-SHA1 with the header length covering the 24-byte MESSAGE-INTEGRITY
    attribute.  For short-term credentials ``key`` is the password
    (OpaqueString-prepared, §9.1.1); for long-term ones MD5(user:realm:pass).
    """
    covered = _with_length(data, len(data) - HEADER_LENGTH + _INTEGRITY_LENGTH)
    return hmac.new(key, covered, hashlib.sha1).digest()


def short_term_key(password: str) -> bytes:
    """The short-term credential key (RFC 8489 §9.1.1); ASCII passwords pass unchanged."""
    return password.encode("utf-8")


def verify_integrity(data: bytes, key: bytes) -> bool:
    """True if ``data`` carries a MESSAGE-INTEGRITY that ``key`` produces (RFC 8489 §9.1.3)."""
    try:
        header = _read_header(data)
        for attr_type, offset, value in _walk(data, header):
            if attr_type == AttrType.MESSAGE_INTEGRITY:
                return len(value) == 20 and hmac.compare_digest(
                    value, integrity_of(data[:offset], key)
                )
    except StunError:
        return False
    return False


def decode(data: bytes) -> StunMessage:
    """Parse one STUN message (a whole UDP datagram or a framed TCP message).

    Checks the header (RFC 8489 §6.3), every attribute's length and value,
    that FINGERPRINT is last and correct (§14.7).  Attributes after
    MESSAGE-INTEGRITY other than FINGERPRINT are ignored (§14.5).  Raises
    :class:`StunError`, or :class:`StunAttributeError` once the header is known.
    """
    data = bytes(data)
    header = _read_header(data)
    xor = _xor_pad(header.cookie, header.transaction_id)
    attributes: list[Attribute] = []
    after_integrity = False
    for attr_type, offset, value in _walk(data, header):
        if attr_type == AttrType.FINGERPRINT:
            if offset + _FINGERPRINT_LENGTH != len(data):
                raise StunAttributeError("FINGERPRINT is not the last attribute", header)
            if len(value) != 4 or int.from_bytes(value, "big") != fingerprint_of(data[:offset]):
                raise StunError("FINGERPRINT does not match")  # silently dropped (§14.7)
        elif after_integrity:
            continue
        try:
            decoded = _decode_value(attr_type, value, xor)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StunAttributeError(f"attribute {attr_type:#06x}: {exc}", header) from exc
        if attr_type == AttrType.MESSAGE_INTEGRITY:
            if len(value) != 20:
                raise StunAttributeError("MESSAGE-INTEGRITY is not 20 bytes", header)
            after_integrity = True
        attributes.append(Attribute(attr_type, decoded))
    return StunMessage(
        header.method, header.cls, header.transaction_id, tuple(attributes), header.cookie
    )


def encode(
    msg: StunMessage,
    *,
    fingerprint: bool = True,
    integrity_key: bytes | None = None,
    pad: bytes = b"\x00",
) -> bytes:
    """Serialise ``msg``; optionally add MESSAGE-INTEGRITY then FINGERPRINT (RFC 8489 §14.5, §14.7).

    ``pad`` is the byte used to pad attribute values (any value is legal,
    RFC 8489 §14; RFC 5769's vectors use spaces).
    """
    if len(msg.transaction_id) != 12:
        raise StunError("the transaction id must be 96 bits")
    if len(pad) != 1:
        raise StunError("pad must be one byte")
    msg_type = message_type(msg.method, msg.cls)
    xor = _xor_pad(msg.cookie, msg.transaction_id)
    body = bytearray()
    for attr in msg.attributes:
        if attr.type in (AttrType.MESSAGE_INTEGRITY, AttrType.FINGERPRINT):
            continue
        value = _encode_value(attr.type, attr.value, xor)
        _append(body, attr.type, value, pad)
    if integrity_key is not None:
        head = _HEADER.pack(msg_type, len(body), msg.cookie, msg.transaction_id)
        _append(body, AttrType.MESSAGE_INTEGRITY, integrity_of(head + body, integrity_key), pad)
    if fingerprint:
        head = _HEADER.pack(msg_type, len(body), msg.cookie, msg.transaction_id)
        crc = fingerprint_of(head + body)
        _append(body, AttrType.FINGERPRINT, crc.to_bytes(4, "big"), pad)
    if len(body) > 0xFFFF:
        raise StunError("message longer than 65535 bytes of attributes")
    return _HEADER.pack(msg_type, len(body), msg.cookie, msg.transaction_id) + bytes(body)


def _append(body: bytearray, attr_type: int, value: bytes, pad: bytes) -> None:
    if len(value) > 0xFFFF:
        raise StunError(f"attribute {attr_type:#06x} longer than 65535 bytes")
    body += _ATTR_HEADER.pack(attr_type, len(value)) + value
    body += pad * (_padded(len(value)) - len(value))


def is_stun(data: bytes) -> bool:
    """Cheap demultiplexing test for STUN on a shared port (RFC 7983 §7, RFC 5626 §8.1).

    The first byte is 0-3, the magic cookie is present and the length field
    matches the datagram.  RFC 3489 messages (no cookie) are not recognised
    here: on SIP and RTP ports only RFC 5389+ clients are expected.
    """
    return (
        len(data) >= HEADER_LENGTH
        and data[0] < 4
        and data[4:8] == b"\x21\x12\xa4\x42"
        and int.from_bytes(data[2:4], "big") == len(data) - HEADER_LENGTH
        and not data[3] & 0x03
    )

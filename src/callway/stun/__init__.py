"""STUN (RFC 8489/5389): message codec, Binding responder, RFC 5780 NAT discovery.

``message`` and ``server`` are sans-I/O (no sockets, no clock); ``shell``
holds the asyncio sockets.
"""

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
    is_stun,
    new_transaction_id,
    verify_integrity,
)
from callway.stun.server import Reply, StunResponder, binding_response

__all__ = [
    "MAGIC_COOKIE",
    "AttrType",
    "Attribute",
    "ChangeRequest",
    "ErrorCode",
    "MessageClass",
    "Method",
    "Reply",
    "StunAttributeError",
    "StunError",
    "StunMessage",
    "StunResponder",
    "TransportAddress",
    "binding_response",
    "decode",
    "encode",
    "is_stun",
    "new_transaction_id",
    "verify_integrity",
]

"""What a resting transaction's record holds, as bytes (RFC 3261 §17).

A :class:`~callway.sip.transaction.resting.RestingStore` keeps bytes only:
the transaction key (which decides equality) and a payload (where a
response or ACK goes, and its bytes).  These functions write and read them.
"""

from __future__ import annotations

from callway.core.address import Address
from callway.sip.message import Request, Response, parse_message
from callway.sip.transaction.events import ClientTransactionKey, ServerTransactionKey

_SEP = "\x00"  # never in a parsed SIP value (the parser refuses NUL)


def server_key_bytes(key: ServerTransactionKey) -> bytes:
    """Branch, sent-by and method (§17.2.3), NUL-separated."""
    host, port = key.sent_by
    text = f"{key.branch}{_SEP}{host}{_SEP}{port}{_SEP}{key.method}"
    return text.encode("utf-8", "surrogatepass")


def client_key_bytes(key: ClientTransactionKey) -> bytes:
    """Branch and method (§17.1.3), NUL-separated."""
    return f"{key.branch}{_SEP}{key.method}".encode("utf-8", "surrogatepass")


def peer_bytes(peer: Address, end: str = "") -> bytes:
    """``peer`` as bytes for a resting record: transport, host, port, local, conn."""
    local = peer.local
    conn = peer.conn
    text = (
        f"{peer.transport}\x00{peer.host}\x00{peer.port}\x00"
        f"{local[0] if local else ''}\x00{local[1] if local else ''}\x00"
        f"{'' if conn is None else conn}{end}"
    )
    return text.encode("utf-8", "surrogatepass")


def peer_from(data: bytes) -> Address:
    """The :class:`Address` that :func:`peer_bytes` wrote."""
    transport, host, port, local_host, local_port, conn = data.decode(
        "utf-8", "surrogatepass"
    ).split(_SEP)
    local = (local_host, int(local_port)) if local_port else None
    return Address(transport, host, int(port), local, int(conn) if conn else None)


def with_peer(peer: Address, message: bytes) -> bytes:
    """A resting message to resend: the peer, a line feed (never in a peer), the bytes."""
    return peer_bytes(peer, "\n") + message


def split_peer(payload: bytes) -> tuple[Address, bytes]:
    """The peer and the message bytes of a :func:`with_peer` payload."""
    peer, message = payload.split(b"\n", 1)
    return peer_from(peer), message


def parsed_response(data: bytes) -> Response:
    """A stored response, parsed again to be resent (its bytes unchanged)."""
    parsed = parse_message(data)
    assert isinstance(parsed, Response)
    return parsed


def parsed_request(data: bytes) -> Request:
    """A stored request (an ACK), parsed again to be resent (its bytes unchanged)."""
    parsed = parse_message(data)
    assert isinstance(parsed, Request)
    return parsed

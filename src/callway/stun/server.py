"""Sans-I/O STUN Binding responder (RFC 8489 §6.3, RFC 5780 §6-7, RFC 3489 §8.2).

:class:`StunResponder` turns one received datagram into the datagrams to
send, each with the local address it must leave from.  With an alternate
address configured it is an RFC 5780 NAT-behaviour-discovery server: it
adds RESPONSE-ORIGIN and OTHER-ADDRESS and honours CHANGE-REQUEST by
answering from another of its sockets.  The shell owns those sockets.

:func:`binding_response` is the one-socket answer used where STUN shares a
port with SIP (RFC 5626 §8.1 keepalives) or RTP (RFC 7983).
"""

from __future__ import annotations

from typing import NamedTuple

from callway.stun.message import (
    Attribute,
    AttrType,
    ErrorCode,
    MessageClass,
    Method,
    StunAttributeError,
    StunError,
    StunMessage,
    TransportAddress,
    decode,
    encode,
    is_comprehension_required,
    is_stun,
)

SOFTWARE = "callway"

HostPort = tuple[str, int]

# Comprehension-required types a Binding request may carry that this server
# accepts (RFC 8489 §14: anything else below 0x8000 gets 420).  USERNAME and
# MESSAGE-INTEGRITY are accepted and ignored: this server has no credentials.
# RESPONSE-ADDRESS (RFC 3489) is accepted but never honoured (reflection risk,
# RFC 5389 §19).  PADDING (RFC 5780 §7.6) is not supported.
_UNDERSTOOD = frozenset(
    {
        AttrType.MAPPED_ADDRESS,
        AttrType.RESPONSE_ADDRESS,
        AttrType.CHANGE_REQUEST,
        AttrType.SOURCE_ADDRESS,
        AttrType.CHANGED_ADDRESS,
        AttrType.USERNAME,
        AttrType.MESSAGE_INTEGRITY,
        AttrType.MESSAGE_INTEGRITY_SHA256,
        AttrType.USERHASH,
        AttrType.REALM,
        AttrType.NONCE,
        AttrType.XOR_MAPPED_ADDRESS,
        AttrType.PRIORITY,
        AttrType.USE_CANDIDATE,
        AttrType.RESPONSE_PORT,
    }
)


class Reply(NamedTuple):
    """A datagram to send: its bytes, the local address to send from, the destination."""

    data: bytes
    local: HostPort
    remote: HostPort


def unknown_required(msg: StunMessage) -> tuple[int, ...]:
    """Comprehension-required attribute types this server does not understand (§6.3.1)."""
    seen: list[int] = []
    for attr in msg.attributes:
        if (
            is_comprehension_required(attr.type)
            and attr.type not in _UNDERSTOOD
            and attr.type not in seen
        ):
            seen.append(attr.type)
    return tuple(seen)


def error_response(request: StunMessage, code: int, reason: str, *extra: Attribute) -> bytes:
    """An error response to ``request`` (RFC 8489 §6.3.1.1) with SOFTWARE and FINGERPRINT.

    An RFC 3489 request gets neither (RFC 8489 §11: its cookie field is echoed).
    """
    attrs = (Attribute(AttrType.ERROR_CODE, ErrorCode(code, reason)), *extra)
    if not request.classic:
        attrs += (Attribute(AttrType.SOFTWARE, SOFTWARE),)
    reply = StunMessage(
        request.method, MessageClass.ERROR, request.transaction_id, attrs, request.cookie
    )
    return encode(reply, fingerprint=not request.classic)


def binding_success(request: StunMessage, source: HostPort, *extra: Attribute) -> bytes:
    """A Binding success response telling the client ``source`` (RFC 8489 §7.3.1.1).

    XOR-MAPPED-ADDRESS, and MAPPED-ADDRESS for RFC 3489-era clients
    (RFC 8489 §14.1 allows both).  A classic (RFC 3489) request gets
    MAPPED-ADDRESS only, its cookie field echoed and no FINGERPRINT
    (RFC 8489 §11).
    """
    mapped = TransportAddress(source[0], source[1])
    if request.classic:
        attrs: tuple[Attribute, ...] = (Attribute(AttrType.MAPPED_ADDRESS, mapped),)
    else:
        attrs = (
            Attribute(AttrType.XOR_MAPPED_ADDRESS, mapped),
            Attribute(AttrType.MAPPED_ADDRESS, mapped),
        )
    attrs += extra
    if not request.classic:  # RFC 3489 has no SOFTWARE; its clients reject odd lengths
        attrs += (Attribute(AttrType.SOFTWARE, SOFTWARE),)
    reply = StunMessage(
        request.method, MessageClass.SUCCESS, request.transaction_id, attrs, request.cookie
    )
    return encode(reply, fingerprint=not request.classic)


def screen(data: bytes) -> StunMessage | bytes | None:
    """Decode and check a datagram (RFC 8489 §6.3, §6.3.1).

    Returns the Binding request to answer, the error response to send
    (400 for a request with a broken attribute or an unsupported method,
    420 for unknown comprehension-required attributes), or ``None`` for
    what is dropped: non-STUN, responses, indications.
    """
    try:
        request = decode(data)
    except StunAttributeError as exc:
        if exc.header.cls != MessageClass.REQUEST:
            return None
        return error_response(exc.header, 400, "Bad Request")
    except StunError:
        return None
    if request.cls != MessageClass.REQUEST:
        return None  # indications are ignored, stray responses dropped
    if request.method != Method.BINDING:
        return error_response(request, 400, "Unsupported Method")
    unknown = unknown_required(request)
    if unknown:
        extra = Attribute(AttrType.UNKNOWN_ATTRIBUTES, unknown)
        return error_response(request, 420, "Unknown Attribute", extra)
    return request


def binding_response(data: bytes, source: HostPort) -> bytes | None:
    """The answer to STUN arriving on a SIP or RTP port, or ``None``.

    ``None`` if ``data`` is not STUN (RFC 7983 §7 demultiplexing) or needs
    no answer (indications such as keepalives, responses).  No RFC 5780
    attributes: the port is not a NAT discovery server.
    """
    if not is_stun(data):
        return None
    checked = screen(data)
    if checked is None or isinstance(checked, bytes):
        return checked
    return binding_success(checked, source)


class StunResponder:
    """The STUN server's protocol core: datagram in, datagrams out.

    ``primary`` is IP1:P1.  ``alternate`` is IP2:P2 (RFC 5780 §4.1); when
    IP2 equals IP1 only the port can change, when P2 equals P1 only the IP.
    The shell must listen on every combination in :attr:`local_addresses`.
    """

    def __init__(self, primary: HostPort, alternate: HostPort | None = None) -> None:
        self.primary = (primary[0], primary[1])
        self.alternate = (alternate[0], alternate[1]) if alternate is not None else None

    @property
    def can_change_ip(self) -> bool:
        """True if a second IP address is configured."""
        return self.alternate is not None and self.alternate[0] != self.primary[0]

    @property
    def can_change_port(self) -> bool:
        """True if a second port is configured."""
        return self.alternate is not None and self.alternate[1] != self.primary[1]

    @property
    def local_addresses(self) -> list[HostPort]:
        """Every (IP, port) combination to listen on: 1, 2 or 4 (RFC 5780 §4.1)."""
        ips = [self.primary[0]] + (
            [self.alternate[0]] if self.can_change_ip and self.alternate else []
        )
        ports = [self.primary[1]] + (
            [self.alternate[1]] if self.can_change_port and self.alternate else []
        )
        return [(ip, port) for ip in ips for port in ports]

    def other(self, local: HostPort, *, change_ip: bool, change_port: bool) -> HostPort:
        """``local`` with its IP and/or port swapped for the other configured one."""
        host, port = local
        if change_ip and self.alternate is not None:
            host = self.primary[0] if host == self.alternate[0] else self.alternate[0]
        if change_port and self.alternate is not None:
            port = self.primary[1] if port == self.alternate[1] else self.alternate[1]
        return host, port

    def other_address(self, local: HostPort) -> HostPort | None:
        """OTHER-ADDRESS for a request received on ``local`` (RFC 5780 §7.4)."""
        if self.alternate is None:
            return None
        return self.other(local, change_ip=True, change_port=True)

    def handle(self, data: bytes, source: HostPort, local: HostPort) -> list[Reply]:
        """Answer one datagram that arrived on ``local`` from ``source``.

        Non-STUN, responses, indications and messages broken before their
        header is known produce nothing (RFC 8489 §6.3).
        """
        source = (source[0], source[1])
        local = (local[0], local[1])
        checked = screen(data)
        if checked is None:
            return []
        if isinstance(checked, bytes):
            return [Reply(checked, local, source)]
        return self._binding(checked, source, local)

    def _binding(self, request: StunMessage, source: HostPort, local: HostPort) -> list[Reply]:
        change = request.change_request
        change_ip = bool(change and change.change_ip)
        change_port = bool(change and change.change_port)
        if (change_ip and not self.can_change_ip) or (change_port and not self.can_change_port):
            # RFC 5780 §6.1: a server that cannot honour CHANGE-REQUEST answers 420.
            unknown = Attribute(AttrType.UNKNOWN_ATTRIBUTES, (AttrType.CHANGE_REQUEST.value,))
            error = error_response(request, 420, "Unknown Attribute", unknown)
            return [Reply(error, local, source)]
        sender = self.other(local, change_ip=change_ip, change_port=change_port)
        destination = source
        response_port = request.get(AttrType.RESPONSE_PORT)
        if isinstance(response_port, int) and response_port and not request.classic:
            destination = (source[0], response_port)  # RFC 5780 §7.5
        extra = self._origin_attributes(request, sender, local)
        return [Reply(binding_success(request, source, *extra), sender, destination)]

    def _origin_attributes(
        self, request: StunMessage, sender: HostPort, local: HostPort
    ) -> tuple[Attribute, ...]:
        """RESPONSE-ORIGIN and OTHER-ADDRESS (RFC 5780 §7.3-7.4), or for an RFC 3489
        client SOURCE-ADDRESS and CHANGED-ADDRESS (RFC 3489 §11.2.3, §11.2.5)."""
        other = self.other_address(local)
        if other is None:
            return ()
        origin = TransportAddress(*sender)
        other_ta = TransportAddress(*other)
        if request.classic:
            return (
                Attribute(AttrType.SOURCE_ADDRESS, origin),
                Attribute(AttrType.CHANGED_ADDRESS, other_ta),
            )
        return (
            Attribute(AttrType.RESPONSE_ORIGIN, origin),
            Attribute(AttrType.OTHER_ADDRESS, other_ta),
        )

"""HEP v3 (EEP): SIP messages for a Homer collector.

A HEP3 packet is the ASCII id ``HEP3``, a 16-bit total length, then chunks,
each ``vendor id (16) | type id (16) | length (16, header included) | value``,
all in network byte order.  The generic chunks (vendor 0) written here:

====  =====================================  ==========
type  meaning                                value
====  =====================================  ==========
1     IP protocol family                     uint8: 2 = IPv4, 10 = IPv6
2     IP protocol id                         uint8: 17 = UDP, 6 = TCP
3/4   IPv4 source / destination address      4 bytes
5/6   IPv6 source / destination address      16 bytes
7/8   source / destination port              uint16
9     timestamp, seconds                     uint32
10    timestamp, microseconds offset         uint32
11    protocol type                          uint8: 1 = SIP
12    capture agent id                       uint32
14    authentication key (optional)          string
15    captured payload                       bytes
17    correlation id (optional: Call-ID)     string
====  =====================================  ==========

TLS is exported decrypted, as TCP.  :class:`HepSender` sends each packet in
one UDP datagram and never blocks: a full socket buffer drops the packet.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct

from callway.ops.pcap import Endpoint

__all__ = [
    "HEP_SIP",
    "HepSender",
    "encode_hep3",
    "parse_hostport",
]

log = logging.getLogger("callway.ops.hep")

HEP_SIP = 1
FAMILY_IPV4 = 2
FAMILY_IPV6 = 10
PROTO_TCP = 6
PROTO_UDP = 17

CHUNK_FAMILY = 1
CHUNK_PROTO = 2
CHUNK_SRC_IPV4 = 3
CHUNK_DST_IPV4 = 4
CHUNK_SRC_IPV6 = 5
CHUNK_DST_IPV6 = 6
CHUNK_SRC_PORT = 7
CHUNK_DST_PORT = 8
CHUNK_TIME_SEC = 9
CHUNK_TIME_USEC = 10
CHUNK_PROTO_TYPE = 11
CHUNK_CAPTURE_ID = 12
CHUNK_AUTH_KEY = 14
CHUNK_PAYLOAD = 15
CHUNK_CORRELATION_ID = 17

_CHUNK = struct.Struct("!HHH")


def _chunk(kind: int, value: bytes) -> bytes:
    return _CHUNK.pack(0, kind, _CHUNK.size + len(value)) + value


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return ipaddress.IPv6Address("::") if ":" in host else ipaddress.IPv4Address("0.0.0.0")


def _same_family(
    src: ipaddress.IPv4Address | ipaddress.IPv6Address,
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> tuple[bytes, bytes, bool]:
    """Packed addresses in one family (IPv4 mapped into IPv6 when they differ)."""
    if src.version == dst.version:
        return src.packed, dst.packed, src.version == 6

    def v6(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
        return addr.packed if addr.version == 6 else b"\0" * 10 + b"\xff\xff" + addr.packed

    return v6(src), v6(dst), True


def encode_hep3(
    payload: bytes,
    src: Endpoint,
    dst: Endpoint,
    timestamp: float,
    *,
    transport: str = "udp",
    capture_id: int = 0,
    auth_key: str = "",
    correlation_id: str = "",
    protocol_type: int = HEP_SIP,
) -> bytes:
    """One HEP3 packet carrying ``payload`` sent from ``src`` to ``dst``."""
    src_ip, dst_ip, v6 = _same_family(_address(src[0]), _address(dst[0]))
    seconds = int(timestamp)
    micros = min(round((timestamp - seconds) * 1_000_000), 999_999)
    chunks = [
        _chunk(CHUNK_FAMILY, bytes([FAMILY_IPV6 if v6 else FAMILY_IPV4])),
        _chunk(CHUNK_PROTO, bytes([PROTO_UDP if transport == "udp" else PROTO_TCP])),
        _chunk(CHUNK_SRC_IPV6 if v6 else CHUNK_SRC_IPV4, src_ip),
        _chunk(CHUNK_DST_IPV6 if v6 else CHUNK_DST_IPV4, dst_ip),
        _chunk(CHUNK_SRC_PORT, struct.pack("!H", src[1])),
        _chunk(CHUNK_DST_PORT, struct.pack("!H", dst[1])),
        _chunk(CHUNK_TIME_SEC, struct.pack("!I", seconds & 0xFFFFFFFF)),
        _chunk(CHUNK_TIME_USEC, struct.pack("!I", micros)),
        _chunk(CHUNK_PROTO_TYPE, bytes([protocol_type])),
        _chunk(CHUNK_CAPTURE_ID, struct.pack("!I", capture_id & 0xFFFFFFFF)),
    ]
    if auth_key:
        chunks.append(_chunk(CHUNK_AUTH_KEY, auth_key.encode()))
    if correlation_id:
        chunks.append(_chunk(CHUNK_CORRELATION_ID, correlation_id.encode()))
    chunks.append(_chunk(CHUNK_PAYLOAD, payload))
    body = b"".join(chunks)
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


def parse_hostport(text: str, default_port: int = 9060) -> tuple[str, int]:
    """``IP:PORT``, ``[IPv6]:PORT``, ``host`` -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


class HepSender:
    """Sends HEP3 packets over UDP to a collector (``host:port``).

    The name is resolved once, here; sending never blocks and never raises
    (a failure is logged once per kind of error and counted in ``dropped``).
    """

    def __init__(self, collector: str, *, capture_id: int = 0, auth_key: str = "") -> None:
        host, port = parse_hostport(collector)
        family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        self.address = sockaddr
        self.capture_id = capture_id
        self.auth_key = auth_key
        self.sent = 0
        self.dropped = 0
        self._errors_logged: set[str] = set()
        self._sock = socket.socket(family, kind, proto)
        self._sock.setblocking(False)

    def send(
        self,
        payload: bytes,
        src: Endpoint,
        dst: Endpoint,
        timestamp: float,
        *,
        transport: str = "udp",
        correlation_id: str = "",
    ) -> None:
        """Encode and send one SIP message."""
        packet = encode_hep3(
            payload,
            src,
            dst,
            timestamp,
            transport=transport,
            capture_id=self.capture_id,
            auth_key=self.auth_key,
            correlation_id=correlation_id,
        )
        try:
            self._sock.sendto(packet, self.address)
        except OSError as exc:
            self.dropped += 1
            kind = type(exc).__name__
            if kind not in self._errors_logged:
                self._errors_logged.add(kind)
                log.warning("HEP export to %s failed: %s", self.address, exc)
            return
        self.sent += 1

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

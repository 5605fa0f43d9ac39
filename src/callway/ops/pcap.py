"""SIP messages as IP packets in classic libpcap files (what Wireshark opens).

Each traced SIP message becomes one raw IP packet (``LINKTYPE_RAW``, no
link-layer header): IPv4 or IPv6, then UDP, or TCP with one segment per
message and sequence numbers that follow each direction of a connection, so
Wireshark's stream analysis stays quiet.  TLS traffic is written as the
*decrypted* SIP over TCP on the TLS port: the view a network capture cannot
give.  Every checksum (IPv4 header, UDP, TCP) is correct.

The file format is the classic one (magic ``a1b2c3d4``, microsecond
timestamps, version 2.4): every tool reads it.
"""

from __future__ import annotations

import ipaddress
import struct
import sys
import zlib
from array import array
from collections import OrderedDict
from functools import lru_cache

__all__ = [
    "LINKTYPE_RAW",
    "PacketEncoder",
    "global_header",
    "internet_checksum",
    "record",
    "tcp_packet",
    "udp_packet",
]

Endpoint = tuple[str, int]
"""(host, port); the host an IPv4 or IPv6 literal."""

LINKTYPE_RAW = 101
MAGIC = 0xA1B2C3D4
SNAPLEN = 262144
PROTO_TCP = 6
PROTO_UDP = 17
TCP_ACK = 0x10
TCP_PSH = 0x08
TCP_WINDOW = 65535
MAX_SEGMENT = 65000
"""Largest TCP payload per packet (an IP packet is at most 64 KiB)."""
MAX_FLOWS = 4096
"""TCP directions whose sequence numbers are remembered (oldest forgotten first)."""
TTL = 64

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIBBHHH")


def global_header(linktype: int = LINKTYPE_RAW, snaplen: int = SNAPLEN) -> bytes:
    """The 24-byte header at the start of a classic pcap file."""
    return _GLOBAL.pack(MAGIC, 2, 4, 0, 0, snaplen, linktype)


def record(timestamp: float, packet: bytes) -> bytes:
    """One pcap record: 16-byte header (seconds, microseconds, lengths) + packet."""
    seconds = int(timestamp)
    micros = round((timestamp - seconds) * 1_000_000)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    size = len(packet)
    return _RECORD.pack(seconds, micros, size, size) + packet


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's complement checksum of ``data`` (padded to even length)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(array("H", data))  # native order; byte-swapped below (RFC 1071 §2B)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    if sys.byteorder == "little":
        total = ((total & 0xFF) << 8) | (total >> 8)
    return ~total & 0xFFFF


@lru_cache(maxsize=1024)
def _packed(host: str, want_v6: bool) -> bytes:
    """The address bytes of ``host`` (a name that is no IP literal becomes all zeros)."""
    try:
        addr = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return bytes(16 if want_v6 else 4)
    if isinstance(addr, ipaddress.IPv4Address):
        return addr.packed if not want_v6 else b"\0" * 10 + b"\xff\xff" + addr.packed
    return addr.packed


@lru_cache(maxsize=1024)
def _is_v6(host: str) -> bool:
    return ":" in host


def _ip_pair(src: str, dst: str) -> tuple[bytes, bytes]:
    """Both addresses in one family (IPv4 mapped into IPv6 when they differ)."""
    v6 = _is_v6(src) or _is_v6(dst)
    return _packed(src, v6), _packed(dst, v6)


def _ip_packet(src: bytes, dst: bytes, proto: int, segment: bytes) -> bytes:
    if len(src) == 4:
        header = _IPV4.pack(0x45, 0, 20 + len(segment), 0, 0x4000, TTL, proto, 0, src, dst)
        checksum = internet_checksum(header)
        return header[:10] + checksum.to_bytes(2, "big") + header[12:] + segment
    return _IPV6.pack(0x60000000, len(segment), proto, TTL, src, dst) + segment


def _pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def udp_packet(src: Endpoint, dst: Endpoint, payload: bytes) -> bytes:
    """An IP packet carrying ``payload`` in one UDP datagram (checksum filled in)."""
    src_ip, dst_ip = _ip_pair(src[0], dst[0])
    length = 8 + len(payload)
    header = _UDP.pack(src[1], dst[1], length, 0)
    pseudo = _pseudo_header(src_ip, dst_ip, PROTO_UDP, length)
    checksum = internet_checksum(pseudo + header + payload)
    header = header[:6] + (checksum or 0xFFFF).to_bytes(2, "big")
    return _ip_packet(src_ip, dst_ip, PROTO_UDP, header + payload)


def tcp_packet(
    src: Endpoint,
    dst: Endpoint,
    seq: int,
    ack: int,
    payload: bytes,
    flags: int = TCP_PSH | TCP_ACK,
) -> bytes:
    """An IP packet carrying ``payload`` in one TCP segment (checksum filled in)."""
    src_ip, dst_ip = _ip_pair(src[0], dst[0])
    header = _TCP.pack(
        src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, TCP_WINDOW, 0, 0
    )
    segment = header + payload
    checksum = internet_checksum(_pseudo_header(src_ip, dst_ip, PROTO_TCP, len(segment)) + segment)
    segment = segment[:16] + checksum.to_bytes(2, "big") + segment[18:]
    return _ip_packet(src_ip, dst_ip, PROTO_TCP, segment)


def _initial_seq(src: Endpoint, dst: Endpoint) -> int:
    """A stable, plausible initial sequence number for one direction."""
    return zlib.crc32(f"{src[0]}|{src[1]}|{dst[0]}|{dst[1]}".encode()) & 0x7FFFFFFF


class PacketEncoder:
    """Turns one SIP message into IP packets, remembering TCP sequence numbers.

    ``transport`` is ``udp``, ``tcp`` or ``tls`` (TLS is written decrypted as
    TCP).  A message bigger than :data:`MAX_SEGMENT` over TCP is split into
    several segments, as a real stack would.
    """

    def __init__(self) -> None:
        self._next_seq: OrderedDict[tuple[Endpoint, Endpoint], int] = OrderedDict()

    def encode(self, transport: str, src: Endpoint, dst: Endpoint, payload: bytes) -> list[bytes]:
        """The packets (raw IP) that carry ``payload`` from ``src`` to ``dst``."""
        if transport == "udp":
            return [udp_packet(src, dst, payload)]
        seq = self._take(src, dst, len(payload))
        ack = self._peek(dst, src)
        packets = []
        for start in range(0, max(len(payload), 1), MAX_SEGMENT):
            chunk = payload[start : start + MAX_SEGMENT]
            packets.append(tcp_packet(src, dst, seq + start, ack, chunk))
        return packets

    def _peek(self, src: Endpoint, dst: Endpoint) -> int:
        key = (src, dst)
        seq = self._next_seq.get(key)
        if seq is None:
            seq = self._next_seq[key] = _initial_seq(src, dst)
            self._forget_oldest()
        return seq

    def _take(self, src: Endpoint, dst: Endpoint, length: int) -> int:
        seq = self._peek(src, dst)
        key = (src, dst)
        self._next_seq[key] = (seq + length) & 0xFFFFFFFF
        self._next_seq.move_to_end(key)
        return seq

    def _forget_oldest(self) -> None:
        while len(self._next_seq) > MAX_FLOWS:
            self._next_seq.popitem(last=False)

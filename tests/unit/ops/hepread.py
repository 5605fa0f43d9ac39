"""A minimal HEP3 decoder written from the spec (shares no code with callway.ops.hep).

HEP3 (EEP v3): ``"HEP3" | total length (u16)`` then chunks of
``vendor id (u16) | type id (u16) | chunk length (u16, 6-byte header included)
| value``, network byte order.  Generic chunk types (vendor 0): 1 IP family,
2 IP protocol, 3/4 IPv4 src/dst, 5/6 IPv6 src/dst, 7/8 src/dst port,
9 time seconds, 10 time microseconds, 11 protocol type (1 = SIP),
12 capture agent id, 14 auth key, 15 payload, 17 correlation id.
"""

from __future__ import annotations

import socket
import struct
from typing import Any


def decode_hep3(packet: bytes) -> dict[int, bytes]:
    """Chunks by type id; asserts the framing is exact."""
    assert packet[:4] == b"HEP3"
    (total,) = struct.unpack("!H", packet[4:6])
    assert total == len(packet)
    chunks: dict[int, bytes] = {}
    offset = 6
    while offset < total:
        vendor, kind, length = struct.unpack("!HHH", packet[offset : offset + 6])
        assert vendor == 0
        assert length >= 6 and offset + length <= total
        assert kind not in chunks, f"chunk {kind} twice"
        chunks[kind] = packet[offset + 6 : offset + length]
        offset += length
    assert offset == total
    return chunks


def fields(chunks: dict[int, bytes]) -> dict[str, Any]:
    """The chunks as typed values, by the spec's names."""

    def u8(value: bytes) -> int:
        assert len(value) == 1
        return value[0]

    def u16(value: bytes) -> int:
        return int(struct.unpack("!H", value)[0])

    def u32(value: bytes) -> int:
        return int(struct.unpack("!I", value)[0])

    out: dict[str, Any] = {
        "family": u8(chunks[1]),
        "proto": u8(chunks[2]),
        "sport": u16(chunks[7]),
        "dport": u16(chunks[8]),
        "sec": u32(chunks[9]),
        "usec": u32(chunks[10]),
        "proto_type": u8(chunks[11]),
        "capture_id": u32(chunks[12]),
        "payload": chunks[15],
    }
    if out["family"] == 2:
        out["src"] = socket.inet_ntop(socket.AF_INET, chunks[3])
        out["dst"] = socket.inet_ntop(socket.AF_INET, chunks[4])
        assert 5 not in chunks and 6 not in chunks
    else:
        assert out["family"] == 10
        out["src"] = socket.inet_ntop(socket.AF_INET6, chunks[5])
        out["dst"] = socket.inet_ntop(socket.AF_INET6, chunks[6])
        assert 3 not in chunks and 4 not in chunks
    if 14 in chunks:
        out["auth"] = chunks[14].decode()
    if 17 in chunks:
        out["correlation"] = chunks[17].decode()
    return out

"""An independent minimal reader of classic pcap files with raw IP packets.

Written from the libpcap file format and RFC 791/8200/768/793, sharing no code
with ``callway.ops.pcap``, so the tests check the writer against the specs.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Packet:
    seconds: int
    micros: int
    version: int
    proto: int
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes
    seq: int = 0
    ack: int = 0
    flags: int = 0
    ip_ok: bool = True
    l4_ok: bool = True
    raw: bytes = b""


def ones_complement_sum(data: bytes) -> int:
    """Sum of big-endian 16-bit words with end-around carry (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def read_header(data: bytes) -> tuple[int, int, int, int, int, int, int]:
    """(magic, major, minor, thiszone, sigfigs, snaplen, linktype)."""
    return struct.unpack("<IHHiIII", data[:24])


def parse_ip(raw: bytes, seconds: int = 0, micros: int = 0) -> Packet:
    """Decode one raw IPv4/IPv6 packet carrying UDP or TCP, verifying checksums."""
    version = raw[0] >> 4
    if version == 4:
        ihl = (raw[0] & 0x0F) * 4
        total = struct.unpack("!H", raw[2:4])[0]
        assert total == len(raw), "IPv4 total length"
        proto = raw[9]
        src_b, dst_b = raw[12:16], raw[16:20]
        ip_ok = ones_complement_sum(raw[:ihl]) == 0xFFFF
        l4 = raw[ihl:]
        pseudo = src_b + dst_b + bytes([0, proto]) + struct.pack("!H", len(l4))
    else:
        assert version == 6
        plen, proto = struct.unpack("!HB", raw[4:7])
        assert plen == len(raw) - 40, "IPv6 payload length"
        src_b, dst_b = raw[8:24], raw[24:40]
        ip_ok = True
        l4 = raw[40:]
        pseudo = src_b + dst_b + struct.pack("!I", len(l4)) + bytes([0, 0, 0, proto])
    src = str(ipaddress.ip_address(src_b))
    dst = str(ipaddress.ip_address(dst_b))
    l4_ok = ones_complement_sum(pseudo + l4) == 0xFFFF
    if proto == 17:
        sport, dport, length, checksum = struct.unpack("!HHHH", l4[:8])
        assert length == len(l4), "UDP length"
        assert checksum != 0, "UDP checksum present"
        return Packet(
            seconds,
            micros,
            version,
            proto,
            src,
            dst,
            sport,
            dport,
            l4[8:],
            ip_ok=ip_ok,
            l4_ok=l4_ok,
            raw=raw,
        )
    assert proto == 6, f"unexpected protocol {proto}"
    sport, dport, seq, ack, offset, flags = struct.unpack("!HHIIBB", l4[:14])
    header_len = (offset >> 4) * 4
    return Packet(
        seconds,
        micros,
        version,
        proto,
        src,
        dst,
        sport,
        dport,
        l4[header_len:],
        seq=seq,
        ack=ack,
        flags=flags,
        ip_ok=ip_ok,
        l4_ok=l4_ok,
        raw=raw,
    )


def read_pcap(path: Path | bytes) -> tuple[int, list[Packet]]:
    """(linktype, packets) of a classic little-endian pcap file."""
    data = path if isinstance(path, bytes) else path.read_bytes()
    magic, major, minor, _, _, _, linktype = read_header(data)
    assert (magic, major, minor) == (0xA1B2C3D4, 2, 4)
    packets = []
    offset = 24
    while offset < len(data):
        seconds, micros, incl, orig = struct.unpack("<IIII", data[offset : offset + 16])
        assert incl == orig
        raw = data[offset + 16 : offset + 16 + incl]
        assert len(raw) == incl, "truncated record"
        packets.append(parse_ip(raw, seconds, micros))
        offset += 16 + incl
    return linktype, packets

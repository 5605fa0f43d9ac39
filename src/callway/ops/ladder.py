"""``callway trace``: a call's SIP ladder in the terminal, from a pcap file.

Reads classic pcap files (callway's own raw-IP captures, and Ethernet or
Linux "cooked" captures from tcpdump/tshark), takes the UDP datagrams and
TCP segments that carry SIP (one message per datagram or segment, as callway
writes them) and draws them as a ladder::

    14:03:07.120  127.0.0.1:5070        127.0.0.1:5060        127.0.0.1:5080
    14:03:07.120  |-------INVITE------->|                     |
    14:03:07.121  |<--------100---------|                     |

Pure functions: the CLI reads the file and prints :func:`render_ladder`.
"""

from __future__ import annotations

import datetime
import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from callway.ops.tracer import call_id_of

__all__ = ["SipPacket", "calls", "describe_file", "read_sip_packets", "render_ladder"]

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LANE = 22
_SIP_STARTS = (b"SIP/2.0 ", b"INVITE ", b"ACK ", b"BYE ", b"CANCEL ", b"OPTIONS ",
               b"REGISTER ", b"PRACK ", b"SUBSCRIBE ", b"NOTIFY ", b"PUBLISH ", b"INFO ",
               b"REFER ", b"MESSAGE ", b"UPDATE ")  # fmt: skip


@dataclass(frozen=True, slots=True)
class SipPacket:
    """One SIP message found in a capture."""

    time: float
    src: str
    dst: str
    transport: str
    data: bytes

    @property
    def label(self) -> str:
        """``INVITE`` for a request, ``200 OK`` for a response."""
        start = self.data.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("utf-8", "replace")
        parts = start.split(" ", 2)
        if start.startswith("SIP/2.0") and len(parts) > 1:
            return " ".join(parts[1:])
        return parts[0]

    @property
    def call_id(self) -> str:
        """The Call-ID header value."""
        return call_id_of(self.data)


def _endpoint(address: bytes, port: int) -> str:
    if len(address) == 4:
        return f"{'.'.join(str(b) for b in address)}:{port}"
    return f"[{ipaddress.IPv6Address(address)}]:{port}"


def _ip_payload(frame: bytes, linktype: int) -> bytes | None:
    if linktype == LINKTYPE_RAW:
        return frame
    ip_types = (b"\x08\x00", b"\x86\xdd")
    if linktype == LINKTYPE_ETHERNET and len(frame) > 14 and frame[12:14] in ip_types:
        return frame[14:]
    if linktype == LINKTYPE_LINUX_SLL and len(frame) > 16 and frame[14:16] in ip_types:
        return frame[16:]
    return None


def _sip_in_ip(packet: bytes, timestamp: float) -> SipPacket | None:
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        header = (packet[0] & 0x0F) * 4
        proto, src, dst = packet[9], packet[12:16], packet[16:20]
        segment = packet[header : struct.unpack("!H", packet[2:4])[0]]
    elif version == 6:
        proto, src, dst = packet[6], packet[8:24], packet[24:40]
        segment = packet[40:]
    else:
        return None
    if proto == 17 and len(segment) >= 8:
        payload, transport = segment[8:], "udp"
    elif proto == 6 and len(segment) >= 20:
        payload, transport = segment[(segment[12] >> 4) * 4 :], "tcp"
    else:
        return None
    if not payload.startswith(_SIP_STARTS):
        return None
    sport, dport = struct.unpack("!HH", segment[:4])
    return SipPacket(timestamp, _endpoint(src, sport), _endpoint(dst, dport), transport, payload)


def read_sip_packets(data: bytes) -> Iterator[SipPacket]:
    """The SIP messages of a classic pcap file's bytes, in file order."""
    if len(data) < 24:
        raise ValueError("not a pcap file (too short)")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise ValueError("not a classic pcap file (pcapng? convert it with editcap -F pcap)")
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, included, _ = record.unpack_from(data, offset)
        frame = data[offset + 16 : offset + 16 + included]
        offset += 16 + included
        ip = _ip_payload(frame, linktype)
        stamp = seconds + fraction / (1e9 if nanos else 1e6)
        found = _sip_in_ip(ip, stamp) if ip is not None else None
        if found is not None:
            yield found


def calls(packets: list[SipPacket]) -> dict[str, list[SipPacket]]:
    """Messages grouped by Call-ID, in order of first appearance."""
    grouped: dict[str, list[SipPacket]] = {}
    for packet in packets:
        grouped.setdefault(packet.call_id, []).append(packet)
    return grouped


def _clock(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def render_ladder(packets: list[SipPacket], call_id: str | None = None) -> str:
    """The ladder diagram of ``packets`` (only ``call_id``'s when given), UTC times."""
    if call_id is not None:
        packets = [p for p in packets if p.call_id == call_id]
    if not packets:
        return "no SIP messages" + (f" for Call-ID {call_id}" if call_id else "") + "\n"
    lanes: list[str] = []
    for packet in packets:
        for endpoint in (packet.src, packet.dst):
            if endpoint not in lanes:
                lanes.append(endpoint)
    width = LANE * len(lanes)
    header = "".join(name[: LANE - 1].ljust(LANE) for name in lanes).rstrip()
    lines = [f"{'':12}  {header}"]
    for packet in packets:
        row = [" "] * width
        for index in range(len(lanes)):
            row[index * LANE] = "|"
        a, b = lanes.index(packet.src), lanes.index(packet.dst)
        left, right = sorted((a * LANE, b * LANE))
        for x in range(left + 1, right):
            row[x] = "-"
        if right > left:
            row[right - 1 if a < b else left + 1] = ">" if a < b else "<"
            label = packet.label[: max(right - left - 3, 0)]
            start = left + 1 + (right - left - 1 - len(label)) // 2
            row[start : start + len(label)] = label
        else:  # a message to itself
            row[left + 1 : left + 2 + len(packet.label)] = f" {packet.label}"
        lines.append(f"{_clock(packet.time)}  {''.join(row).rstrip()}")
    return "\n".join(lines) + "\n"


def describe_file(path: Path, call_id: str | None = None, *, list_calls: bool = False) -> str:
    """What ``callway trace FILE [--call-id ID] [--list]`` prints.

    ``list_calls`` gives one line per call (Call-ID, message count, first
    request); otherwise the ladder of one call, or of everything.
    """
    packets = list(read_sip_packets(path.read_bytes()))
    if not list_calls:
        return render_ladder(packets, call_id)
    lines = []
    for cid, messages in calls(packets).items():
        first = next((m.label for m in messages if not m.data.startswith(b"SIP/")), "?")
        lines.append(f"{cid}  {len(messages):4d} messages  {first}")
    return "\n".join(lines) + "\n" if lines else "no SIP messages\n"

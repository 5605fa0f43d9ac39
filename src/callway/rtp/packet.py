"""RTP and RTCP wire codecs (RFC 3550) and RFC 4733 telephone events.

Only what a relay and its statistics need: the fixed RTP header with the
offsets of the payload (RFC 3550 §5.1, §5.3.1), RTCP sender and receiver
reports (RFC 3550 §6.4) and the ``telephone-event`` payload (RFC 4733 §2.3).
Malformed input raises :class:`RtpError` with a precise message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "DTMF_EVENTS",
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "RtpError",
    "RtpHeader",
    "SenderReport",
    "TelephoneEvent",
    "build_rtp",
    "build_telephone_event",
    "is_rtcp",
    "parse_rtcp",
    "parse_rtp_header",
    "parse_telephone_event",
]

RTP_VERSION = 2
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203

_RTP_FIXED = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")
_RTCP_COMMON = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IQIII")  # ssrc, NTP timestamp, RTP timestamp, packets, octets
_REPORT_BLOCK = struct.Struct("!IIIIII")
_EVENT = struct.Struct("!BBH")

# RFC 4733 §3.2: events 0-15 are the DTMF digits, 16 is flash.
DTMF_EVENTS = "0123456789*#ABCD"


class RtpError(ValueError):
    """Bytes that are not a valid RTP or RTCP packet or RFC 4733 payload."""


class RtpHeader(NamedTuple):
    """The RTP header fields (RFC 3550 §5.1) and where the payload lies."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    csrc_count: int
    extension: bool
    padding: bool
    payload_offset: int
    payload_end: int


def parse_rtp_header(data: bytes | bytearray | memoryview) -> RtpHeader:
    """Parse an RTP header; ``data[payload_offset:payload_end]`` is the payload.

    The offset skips the CSRC list and a header extension (RFC 3550 §5.3.1);
    the end excludes padding, whose length is the last octet (§5.1).
    """
    if len(data) < _RTP_FIXED.size:
        raise RtpError(f"RTP packet too short: {len(data)} bytes")
    first, second, sequence, timestamp, ssrc = _RTP_FIXED.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {first >> 6}, expected 2")
    csrc_count = first & 0x0F
    offset = _RTP_FIXED.size + 4 * csrc_count
    extension = bool(first & 0x10)
    if extension:
        if len(data) < offset + _EXTENSION.size:
            raise RtpError("RTP header extension truncated")
        _profile, words = _EXTENSION.unpack_from(data, offset)
        offset += _EXTENSION.size + 4 * words
    end = len(data)
    padding = bool(first & 0x20)
    if padding and end > offset:
        end -= data[-1]
    if end < offset:
        raise RtpError(f"RTP header of {offset} bytes exceeds packet of {len(data)} bytes")
    return RtpHeader(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        marker=bool(second & 0x80),
        csrc_count=csrc_count,
        extension=extension,
        padding=padding,
        payload_offset=offset,
        payload_end=end,
    )


def build_rtp(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    *,
    marker: bool = False,
    csrcs: tuple[int, ...] = (),
) -> bytes:
    """Serialize an RTP packet without extension or padding (RFC 3550 §5.1)."""
    if not 0 <= payload_type <= 127:
        raise RtpError(f"payload type {payload_type} outside 0-127")
    if len(csrcs) > 15:
        raise RtpError(f"{len(csrcs)} CSRCs, at most 15")
    header = _RTP_FIXED.pack(
        (RTP_VERSION << 6) | len(csrcs),
        (0x80 if marker else 0) | payload_type,
        sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )
    if csrcs:
        header += struct.pack(f"!{len(csrcs)}I", *csrcs)
    return header + payload


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """True for an RTCP packet sharing a port with RTP (RFC 5761 §4: PT 64-95 after masking)."""
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int  # fixed point, lost/expected * 256
    packets_lost: int  # cumulative, signed 24-bit
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, timestamp units
    last_sr: int  # middle 32 bits of the last SR's NTP timestamp
    delay_since_last_sr: int  # units of 1/65536 s


@dataclass(frozen=True, slots=True)
class SenderReport:
    """RTCP SR (RFC 3550 §6.4.1)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...]


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RTCP RR (RFC 3550 §6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...]


@dataclass(frozen=True, slots=True)
class RtcpPacket:
    """Any other RTCP packet (SDES, BYE, APP, feedback), kept as its body."""

    packet_type: int
    count: int
    body: bytes


def _report_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    if len(body) < offset + count * _REPORT_BLOCK.size:
        raise RtpError(f"RTCP report blocks truncated: {count} announced")
    blocks = []
    for index in range(count):
        ssrc, loss, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(
            body, offset + index * _REPORT_BLOCK.size
        )
        lost = loss & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, loss >> 24, lost, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _parse_one(
    packet_type: int, count: int, body: bytes
) -> SenderReport | ReceiverReport | RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < _SENDER_INFO.size:
            raise RtpError(f"RTCP SR too short: {len(body)} bytes of body")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        reports = _report_blocks(body, _SENDER_INFO.size, count)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, reports)
    if packet_type == RTCP_RR:
        if len(body) < 4:
            raise RtpError(f"RTCP RR too short: {len(body)} bytes of body")
        return ReceiverReport(int.from_bytes(body[:4], "big"), _report_blocks(body, 4, count))
    return RtcpPacket(packet_type, count, body)


def parse_rtcp(data: bytes) -> list[SenderReport | ReceiverReport | RtcpPacket]:
    """Parse a compound RTCP packet (RFC 3550 §6.1) into its packets."""
    packets: list[SenderReport | ReceiverReport | RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _RTCP_COMMON.size:
            raise RtpError(f"RTCP header truncated at offset {offset}")
        first, packet_type, words = _RTCP_COMMON.unpack_from(data, offset)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTCP version {first >> 6}, expected 2")
        end = offset + 4 * (words + 1)
        if end > len(data):
            raise RtpError(
                f"RTCP length {4 * (words + 1)} exceeds the {len(data) - offset} bytes left"
            )
        body_end = end
        if first & 0x20:
            body_end -= data[end - 1]
            if body_end < offset + _RTCP_COMMON.size:
                raise RtpError("RTCP padding exceeds the packet")
        packets.append(_parse_one(packet_type, first & 0x1F, data[offset + 4 : body_end]))
        offset = end
    if not packets:
        raise RtpError("empty RTCP packet")
    return packets


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 §2.3 named event: DTMF digit, volume and duration so far."""

    event: int
    end: bool
    volume: int  # -dBm0, 0-63
    duration: int  # timestamp units

    @property
    def digit(self) -> str | None:
        """The DTMF digit for events 0-15 (RFC 4733 §3.2), else None."""
        return DTMF_EVENTS[self.event] if self.event < len(DTMF_EVENTS) else None


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """Parse a ``telephone-event`` payload (RFC 4733 §2.3)."""
    if len(payload) < _EVENT.size:
        raise RtpError(f"telephone-event payload of {len(payload)} bytes, expected 4")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def build_telephone_event(event: TelephoneEvent) -> bytes:
    """Serialize a ``telephone-event`` payload (RFC 4733 §2.3; R bit zero)."""
    if not 0 <= event.volume <= 63:
        raise RtpError(f"telephone-event volume {event.volume} outside 0-63")
    flags = (0x80 if event.end else 0) | event.volume
    return _EVENT.pack(event.event & 0xFF, flags, event.duration & 0xFFFF)

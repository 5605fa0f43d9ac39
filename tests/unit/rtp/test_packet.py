"""RTP header, RTCP reports (RFC 3550) and telephone-event (RFC 4733) codecs."""

from __future__ import annotations

import pytest

from callway.rtp.packet import (
    RTCP_SDES,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtpError,
    SenderReport,
    TelephoneEvent,
    build_rtp,
    build_telephone_event,
    is_rtcp,
    parse_rtcp,
    parse_rtp_header,
    parse_telephone_event,
)

RTP_PCMU = (
    b"\x80"  # V=2 P=0 X=0 CC=0
    b"\x80"  # M=1 PT=0 (PCMU)
    b"\x12\x34"  # sequence 4660
    b"\x00\x00\x1f\x40"  # timestamp 8000
    b"\xde\xad\xbe\xef"  # SSRC
) + b"\xff" * 160

RTP_CSRC_EXT_PAD = (
    b"\xb2"  # V=2 P=1 X=1 CC=2
    b"\x08"  # M=0 PT=8 (PCMA)
    b"\x00\x01"  # sequence 1
    b"\x00\x00\x00\xa0"  # timestamp 160
    b"\x00\x00\x00\x01"  # SSRC 1
    b"\x00\x00\x00\x02"  # CSRC 2
    b"\x00\x00\x00\x03"  # CSRC 3
    b"\xbe\xde\x00\x01"  # extension profile 0xBEDE, 1 word
    b"\x10\xaa\x00\x00"  # extension data
    b"\xd5\xd5\xd5\xd5"  # payload, 4 bytes of A-law silence
    b"\x00\x00\x03"  # padding, count 3 in the last octet
)


def test_parse_fixed_header() -> None:
    header = parse_rtp_header(RTP_PCMU)
    assert header.payload_type == 0
    assert header.marker
    assert header.sequence == 0x1234
    assert header.timestamp == 8000
    assert header.ssrc == 0xDEADBEEF
    assert (header.csrc_count, header.extension, header.padding) == (0, False, False)
    assert (header.payload_offset, header.payload_end) == (12, 172)


def test_parse_csrc_extension_and_padding() -> None:
    header = parse_rtp_header(RTP_CSRC_EXT_PAD)
    assert header.payload_type == 8
    assert not header.marker
    assert header.csrc_count == 2
    assert header.extension and header.padding
    payload = RTP_CSRC_EXT_PAD[header.payload_offset : header.payload_end]
    assert payload == b"\xd5" * 4


def test_parse_accepts_memoryview_and_bytearray() -> None:
    assert parse_rtp_header(memoryview(RTP_PCMU)) == parse_rtp_header(bytearray(RTP_PCMU))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00", "too short"),
        (b"\x40" + RTP_PCMU[1:], "version 1"),
        (b"\x8f" + RTP_PCMU[1:20], "exceeds packet"),
        (b"\x90" + RTP_PCMU[1:13], "extension truncated"),
        (b"\xa0" + RTP_PCMU[1:12] + b"\x00\x10", "exceeds packet"),
    ],
)
def test_parse_malformed(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        parse_rtp_header(data)


def test_build_matches_vector_and_round_trips() -> None:
    built = build_rtp(0, 0x1234, 8000, 0xDEADBEEF, b"\xff" * 160, marker=True)
    assert built == RTP_PCMU
    with_csrc = build_rtp(8, 70000, 2**32 + 5, 1, b"x", csrcs=(7, 8))
    header = parse_rtp_header(with_csrc)
    assert (header.sequence, header.timestamp, header.csrc_count) == (70000 & 0xFFFF, 5, 2)
    assert with_csrc[header.payload_offset :] == b"x"


def test_build_rejects_bad_fields() -> None:
    with pytest.raises(RtpError, match="payload type 128"):
        build_rtp(128, 0, 0, 0, b"")
    with pytest.raises(RtpError, match="16 CSRCs"):
        build_rtp(0, 0, 0, 0, b"", csrcs=tuple(range(16)))


def test_is_rtcp_demultiplexing() -> None:
    assert not is_rtcp(RTP_PCMU)
    assert is_rtcp(SR_WITH_BLOCK)
    assert is_rtcp(RR)
    assert not is_rtcp(b"\x80")


SR_WITH_BLOCK = (
    b"\x81\xc8\x00\x0c"  # V=2 P=0 RC=1 PT=200 (SR) length=12 words
    b"\x12\x34\x56\x78"  # sender SSRC
    b"\xe8\x4b\x41\x5d\x8f\x5c\x28\xf5"  # NTP timestamp
    b"\x00\x00\x1f\x40"  # RTP timestamp 8000
    b"\x00\x00\x00\x32"  # sender's packet count 50
    b"\x00\x00\x1f\x40"  # sender's octet count 8000
    b"\xde\xad\xbe\xef"  # report block: source SSRC
    b"\x19\xff\xff\xff"  # fraction lost 25/256, cumulative lost -1
    b"\x00\x01\x12\x34"  # extended highest sequence
    b"\x00\x00\x00\x2a"  # jitter 42
    b"\x41\x5d\x8f\x5c"  # LSR
    b"\x00\x01\x00\x00"  # DLSR 1 s
)

RR = (
    b"\x80\xc9\x00\x01"  # V=2 RC=0 PT=201 (RR) length=1
    b"\xca\xfe\xba\xbe"  # reporter SSRC
)

SDES_PADDED = (
    b"\xa1\xca\x00\x04"  # V=2 P=1 SC=1 PT=202 (SDES) length=4
    b"\xca\xfe\xba\xbe"  # chunk SSRC
    b"\x01\x04abcd"  # CNAME "abcd"
    b"\x00\x00"  # end of items, word alignment
    b"\x00\x00\x00\x04"  # padding, count 4
)


def test_parse_sender_report() -> None:
    (report,) = parse_rtcp(SR_WITH_BLOCK)
    assert report == SenderReport(
        ssrc=0x12345678,
        ntp_timestamp=0xE84B415D8F5C28F5,
        rtp_timestamp=8000,
        packet_count=50,
        octet_count=8000,
        reports=(ReportBlock(0xDEADBEEF, 25, -1, 0x11234, 42, 0x415D8F5C, 65536),),
    )


def test_parse_compound_rr_and_padded_sdes() -> None:
    packets = parse_rtcp(RR + SDES_PADDED)
    assert packets == [
        ReceiverReport(0xCAFEBABE, ()),
        RtcpPacket(RTCP_SDES, 1, b"\xca\xfe\xba\xbe\x01\x04abcd\x00\x00"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x80\xc9", "header truncated"),
        (b"\x40\xc9\x00\x01\x00\x00\x00\x00", "version 1"),
        (b"\x80\xc9\x00\x05\x00\x00\x00\x00", "exceeds"),
        (b"\x81\xc9\x00\x01\x00\x00\x00\x00", "report blocks truncated"),
        (b"\x80\xc8\x00\x01\x00\x00\x00\x00", "SR too short"),
        (b"\x80\xc9\x00\x00", "RR too short"),
        (b"\xa0\xc9\x00\x01\x00\x00\x00\x09", "padding exceeds"),
    ],
)
def test_parse_rtcp_malformed(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        parse_rtcp(data)


DTMF_5_END = (
    b"\x05"  # event 5
    b"\x8a"  # E=1 R=0 volume 10
    b"\x03\x20"  # duration 800 (100 ms at 8 kHz)
)


def test_telephone_event() -> None:
    event = parse_telephone_event(DTMF_5_END)
    assert event == TelephoneEvent(event=5, end=True, volume=10, duration=800)
    assert event.digit == "5"
    assert build_telephone_event(event) == DTMF_5_END
    assert parse_telephone_event(b"\x0b\x00\x00\xa0").digit == "#"
    assert parse_telephone_event(b"\x10\x00\x00\xa0").digit is None  # flash


def test_telephone_event_errors() -> None:
    with pytest.raises(RtpError, match="3 bytes"):
        parse_telephone_event(b"\x05\x8a\x03")
    with pytest.raises(RtpError, match="volume 64"):
        build_telephone_event(TelephoneEvent(1, False, 64, 0))

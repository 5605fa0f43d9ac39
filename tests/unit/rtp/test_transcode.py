"""Per-direction RTP rewriting: G.711 law change and payload type renumbering."""

from __future__ import annotations

import pytest

from callway.rtp.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW
from callway.rtp.packet import build_rtp, parse_rtp_header
from callway.rtp.transcode import Transcoder, g711_transcoder

PAYLOAD = bytes(range(160))


def test_alaw_to_ulaw_rewrites_type_and_payload() -> None:
    packet = build_rtp(8, 7, 160, 0xABCDEF, PAYLOAD, marker=True)
    out = bytes(g711_transcoder("alaw", "ulaw").apply(packet))
    header = parse_rtp_header(out)
    assert (header.payload_type, header.marker, header.sequence, header.ssrc) == (
        0,
        True,
        7,
        0xABCDEF,
    )
    assert out[12:] == PAYLOAD.translate(ALAW_TO_ULAW)


def test_csrc_extension_and_padding_are_not_translated() -> None:
    packet = (
        b"\xb1\x00\x00\x01\x00\x00\x00\xa0\x00\x00\x00\x01"  # V=2 P X CC=1, PT 0
        b"\x00\x00\x00\x09"  # CSRC
        b"\xbe\xde\x00\x01\x10\xaa\x00\x00"  # one-word extension
        b"\xff\x00\xff\x00"  # payload
        b"\x00\x02"  # padding, count 2
    )
    out = bytes(g711_transcoder("ulaw", "alaw").apply(packet))
    assert out[1] == 8
    assert out[:1] == packet[:1] and out[2:24] == packet[2:24]
    assert out[24:28] == packet[24:28].translate(ULAW_TO_ALAW)
    assert out[28:] == b"\x00\x02"


def test_other_payload_types_renumbered_or_untouched() -> None:
    transcoder = g711_transcoder("ulaw", "alaw", pt_map={101: 96})
    event = build_rtp(101, 1, 0, 1, b"\x05\x8a\x03\x20")
    out = bytes(transcoder.apply(event))
    assert out[1] == 96 and out[2:] == event[2:]
    comfort_noise = build_rtp(13, 1, 0, 1, b"\x40")
    assert transcoder.apply(comfort_noise) is comfort_noise


def test_non_rtp_and_muxed_rtcp_pass_unchanged() -> None:
    transcoder = g711_transcoder("alaw", "ulaw")
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
    rtcp = b"\x80\xc9\x00\x01\xca\xfe\xba\xbe" + bytes(4)
    for packet in (stun, rtcp, b"\x80\x08"):
        assert transcoder.apply(packet) is packet


def test_renumber_only() -> None:
    transcoder = Transcoder(pt_map={0: 96})
    out = bytes(transcoder.apply(build_rtp(0, 1, 0, 1, PAYLOAD)))
    assert out[1] == 96 and out[12:] == PAYLOAD


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"no G\.711 transcoding"):
        g711_transcoder("ulaw", "ulaw")
    with pytest.raises(ValueError, match="256 bytes"):
        Transcoder(codec_pt=0, table=b"\x00")
    with pytest.raises(ValueError, match="256 bytes"):
        Transcoder(table=ULAW_TO_ALAW)

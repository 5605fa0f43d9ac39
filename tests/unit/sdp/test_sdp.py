"""SDP parse/format round trips (RFC 8866) and offer/answer (RFC 3264).

The offers below are written in the style of what baresip, pjsua and sipp
send (same line order and attribute habits), with documentation addresses.
"""

from __future__ import annotations

import pytest

from callway.sdp import (
    Attribute,
    Connection,
    Direction,
    RtcpAttribute,
    RtpMap,
    SdpError,
    answer_offer,
    audio_format,
    format_sdp,
    make_offer,
    media_target,
    parse_sdp,
    rewrite_connection,
)


def crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


BARESIP = crlf("""
v=0
o=- 1187410585 3458315404 IN IP4 192.0.2.20
s=-
c=IN IP4 192.0.2.20
t=0 0
m=audio 30000 RTP/AVP 0 8 101
b=AS:80
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp-rsize
a=ssrc:2875627263 cname:2db3a4c6-1d8b-4d1f-9a93-c4a2a1a0a0a0
a=sendrecv
a=label:1
a=ptime:20
""")

PJSUA = crlf("""
v=0
o=- 3925378112 3925378112 IN IP4 198.51.100.30
s=pjmedia
b=AS:84
t=0 0
a=X-nat:0
m=audio 4000 RTP/AVP 96 97 98 99 3 0 8 9 120 121
c=IN IP4 198.51.100.30
b=TIAS:64000
a=rtcp:4001 IN IP4 198.51.100.30
a=sendrecv
a=rtpmap:96 speex/16000
a=rtpmap:97 speex/8000
a=rtpmap:98 speex/32000
a=rtpmap:99 iLBC/8000
a=fmtp:99 mode=30
a=rtpmap:120 telephone-event/16000
a=fmtp:120 0-16
a=rtpmap:121 telephone-event/8000
a=fmtp:121 0-16
a=ssrc:1447516862 cname:3c2e1e5e47c3e3f1
""")

SIPP = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")

# SRTP/ICE-capable softphone: crypto and candidates kept raw, an unknown
# line type, repeated time descriptions and two streams.
SOFTPHONE = crlf("""
v=0
o=alice 2890844526 2890844527 IN IP4 203.0.113.5
s=Talk
i=A call
u=http://www.example.com/seminars/sdp.pdf
e=alice@example.com
c=IN IP4 203.0.113.5
b=CT:128
t=2873397496 2873404696
r=7d 1h 0 25h
t=0 0
y=unknown line kept
a=group:BUNDLE 0
a=ice-ufrag:F7gI
m=audio 49170 RTP/SAVP 8 0 101
i=voice
c=IN IP4 203.0.113.5
a=mid:0
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32
a=candidate:1 1 UDP 2130706431 203.0.113.5 49170 typ host
a=candidate:2 1 UDP 1694498815 192.0.2.77 61000 typ srflx raddr 203.0.113.5 rport 49170
a=rtcp-mux
a=maxptime:40
a=sendrecv
m=video 51372/2 RTP/AVP 99
a=rtpmap:99 h263-1998/90000
""")


@pytest.mark.parametrize(
    "data", [BARESIP, PJSUA, SIPP, SOFTPHONE], ids=["baresip", "pjsua", "sipp", "softphone"]
)
def test_round_trip_is_byte_exact(data: bytes) -> None:
    desc = parse_sdp(data)
    assert format_sdp(desc) == data
    assert parse_sdp(format_sdp(desc)) == desc


def test_lf_line_ends_and_str_input() -> None:
    text = SIPP.decode().replace("\r\n", "\n")
    assert format_sdp(parse_sdp(text)) == SIPP
    assert parse_sdp(text.encode()) == parse_sdp(SIPP)


def test_session_fields() -> None:
    desc = parse_sdp(PJSUA)
    assert desc.origin.username == "-"
    assert desc.origin.session_id == "3925378112"
    assert desc.origin.session_version == 3925378112
    assert desc.origin.address == "198.51.100.30"
    assert desc.name == "pjmedia"
    assert desc.connection is None
    assert desc.get("X-nat") == "0"
    media = desc.media[0]
    assert media.connection == Connection("198.51.100.30")
    assert desc.connection_for(media) == Connection("198.51.100.30")
    assert media.payload_types == [96, 97, 98, 99, 3, 0, 8, 9, 120, 121]
    assert media.rtpmap(0) == RtpMap(0, "PCMU", 8000)  # static, no rtpmap line
    assert media.rtpmap(121) == RtpMap(121, "telephone-event", 8000)
    assert media.fmtp(99) == "mode=30"
    assert media.rtcp == RtcpAttribute(4001, Connection("198.51.100.30"))
    assert media.direction is Direction.SENDRECV


def test_media_attributes() -> None:
    desc = parse_sdp(SOFTPHONE)
    audio, video = desc.media
    assert audio.proto == "RTP/SAVP"
    assert audio.crypto == [
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
    ]
    assert len(audio.candidates) == 2
    assert audio.candidates[1].endswith("rport 49170")
    assert audio.rtcp_mux
    assert audio.maxptime == 40
    assert audio.ptime is None
    assert video.port == 51372
    assert video.port_count == 2
    assert desc.direction_for(video) is Direction.SENDRECV
    assert [line.type for line in desc.lines] == ["i", "u", "e", "b", "t", "r", "t", "y"]


def test_baresip_attributes() -> None:
    media = parse_sdp(BARESIP).media[0]
    assert media.ptime == 20
    assert media.get("rtcp-rsize") == ""
    assert media.get("label") == "1"
    assert media.get("nothing") is None


def test_edit_direction_in_place() -> None:
    desc = parse_sdp(BARESIP)
    desc.media[0].set_direction(Direction.SENDONLY)
    text = format_sdp(desc).decode()
    assert "a=sendonly\r\na=label:1\r\n" in text
    assert "sendrecv" not in text


def test_set_replaces_first_and_drops_duplicates() -> None:
    media = parse_sdp(BARESIP).media[0]
    media.attributes.append(Attribute("ptime", "30"))
    media.set("ptime", "40")
    assert media.get_all("ptime") == ["40"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("o=- 1 1 IN IP4 192.0.2.1\ns=-\n", "expected v=0"),
        ("v=1\no=- 1 1 IN IP4 192.0.2.1\ns=-\n", "expected v=0"),
        ("v=0\ns=-\n", "missing o="),
        ("v=0\no=- 1 1 IN IP4 192.0.2.1\n", "missing o= or s="),
        ("v=0\no=- 1 1 IN IP4\ns=-\n", "o= needs 6 fields"),
        ("v=0\no=- 1 x IN IP4 192.0.2.1\ns=-\n", "bad session version"),
        ("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4\n", "c= needs 3 fields"),
        ("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nm=audio\n", "m= needs"),
        ("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nm=audio x RTP/AVP 0\n", "bad m= port"),
        ("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nm=audio 70000 RTP/AVP 0\n", "outside 0-65535"),
        (
            "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nm=audio 1 RTP/AVP 0\na=rtpmap:x PCMU/8000\n",
            "bad rtpmap",
        ),
        (
            "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nm=audio 1 RTP/AVP 0\na=rtpmap:0 PCMU\n",
            "bad rtpmap",
        ),
        ("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nm=audio 1 RTP/AVP 0\na=ptime:abc\n", "bad ptime"),
        ("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nm=audio 1 RTP/AVP 0\na=rtcp:x\n", "bad rtcp"),
        ("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nm=audio 1 RTP/AVP 0\na=fmtp:x\n", "bad fmtp"),
        ("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nnot a line\n", "not a <type>=<value>"),
        ("v=0\no=- 1 1 IN IP4 192.0.2.1\no=- 1 1 IN IP4 192.0.2.1\ns=-\n", "second o="),
    ],
)
def test_malformed_raises_sdp_error(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message) as info:
        parse_sdp(text)
    assert isinstance(info.value, ValueError)


def test_error_carries_line_number() -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nm=audio 1 RTP/AVP 0\na=ptime:abc\n")
    assert info.value.line == 5
    assert str(info.value).startswith("line 5: ")


def test_not_utf8() -> None:
    with pytest.raises(SdpError, match="UTF-8"):
        parse_sdp(b"v=0\r\ns=\xff\r\n")


# --- offer/answer (RFC 3264) ---------------------------------------------


def answer(offer: bytes, **kwargs: object) -> bytes | None:
    options: dict[str, object] = {
        "allowed_codecs": ("ulaw",),
        "local_address": "192.0.2.1",
        "local_port": 10000,
        "session_id": 42,
    }
    options.update(kwargs)
    result = answer_offer(parse_sdp(offer), **options)  # type: ignore[arg-type]
    return None if result is None else format_sdp(result)


def test_answer_baresip_ulaw_with_telephone_event() -> None:
    assert answer(BARESIP) == crlf("""
v=0
o=- 42 0 IN IP4 192.0.2.1
s=callway
c=IN IP4 192.0.2.1
t=0 0
m=audio 10000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
""")


def test_answer_keeps_offer_order_of_allowed_codecs() -> None:
    result = answer_offer(
        parse_sdp(SOFTPHONE.replace(b"RTP/SAVP", b"RTP/AVP")),
        allowed_codecs=("ulaw", "alaw"),
        local_address="192.0.2.1",
        local_port=10000,
        session_id=1,
    )
    assert result is not None
    assert result.media[0].formats == ["8", "0", "101"]
    assert result.media[0].maxptime is None
    assert result.media[0].ptime == 20
    assert not result.media[0].rtcp_mux  # declined: the relay keeps RTCP apart
    assert result.media[1].port == 0
    assert result.media[1].formats == ["99"]


def test_answer_pjsua_picks_telephone_event_at_codec_rate() -> None:
    result = answer_offer(
        parse_sdp(PJSUA),
        allowed_codecs=("alaw", "ulaw"),
        local_address="192.0.2.1",
        local_port=10000,
        session_id=1,
    )
    assert result is not None
    media = result.media[0]
    assert media.formats == ["0", "8", "121"]
    assert media.fmtp(121) == "0-16"
    fmt = audio_format(result)
    assert fmt is not None
    assert (fmt.codec.name, fmt.payload_type, fmt.event_pt) == ("ulaw", 0, 121)


def test_answer_without_dtmf() -> None:
    data = answer(BARESIP, dtmf=False)
    assert data is not None
    assert b"telephone-event" not in data


def test_sipp_offer_without_telephone_event() -> None:
    data = answer(SIPP)
    assert data is not None
    assert b"m=audio 10000 RTP/AVP 0\r\n" in data
    assert b"telephone-event" not in data


def test_no_common_codec_is_488() -> None:
    assert answer(SIPP, allowed_codecs=("alaw",)) is None


def test_only_telephone_event_is_488() -> None:
    offer = SIPP.replace(b"RTP/AVP 0", b"RTP/AVP 101").replace(
        b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:101 telephone-event/8000"
    )
    assert answer(offer) is None


def test_srtp_only_offer_is_488_by_default() -> None:
    assert answer(SOFTPHONE, allowed_codecs=("ulaw", "alaw")) is None


def test_unknown_codec_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown codec 'opus'"):
        answer(SIPP, allowed_codecs=("opus",))


def test_rtpmap_overrides_static_meaning_and_case() -> None:
    offer = SIPP.replace(b"RTP/AVP 0", b"RTP/AVP 96").replace(
        b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:96 pcmu/8000"
    )
    data = answer(offer)
    assert data is not None
    assert b"m=audio 10000 RTP/AVP 96\r\na=rtpmap:96 PCMU/8000\r\n" in data


@pytest.mark.parametrize(
    ("offered", "local", "expected"),
    [
        ("sendrecv", Direction.SENDRECV, "sendrecv"),
        ("sendonly", Direction.SENDRECV, "recvonly"),
        ("recvonly", Direction.SENDRECV, "sendonly"),
        ("inactive", Direction.SENDRECV, "inactive"),
        ("sendrecv", Direction.SENDONLY, "sendonly"),
        ("sendonly", Direction.SENDONLY, "inactive"),
        ("recvonly", Direction.RECVONLY, "inactive"),
    ],
)
def test_direction(offered: str, local: Direction, expected: str) -> None:
    offer = SIPP + f"a={offered}\r\n".encode()
    data = answer(offer, direction=local)
    assert data is not None
    assert data.endswith(f"a={expected}\r\n".encode())


def test_session_level_direction_applies() -> None:
    offer = SIPP.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    data = answer(offer)
    assert data is not None
    assert data.endswith(b"a=recvonly\r\n")


def test_hold_address_means_offerer_does_not_receive() -> None:
    offer = SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0")
    data = answer(offer)
    assert data is not None
    assert data.endswith(b"a=recvonly\r\n")


def test_ptime_echoed_and_capped_by_maxptime() -> None:
    assert b"a=ptime:30\r\n" in (answer(SIPP + b"a=ptime:30\r\n") or b"")
    assert b"a=ptime:20\r\n" in (answer(SIPP, ptime=20) or b"")
    assert b"a=ptime" not in (answer(SIPP, ptime=None) or b"a=ptime")
    capped = answer(SIPP + b"a=maxptime:10\r\n", ptime=20)
    assert capped is not None
    assert b"a=ptime:10\r\n" in capped


def test_rejected_streams_answered_with_port_zero() -> None:
    offer = crlf("""
v=0
o=- 1 1 IN IP4 192.0.2.20
s=-
c=IN IP4 192.0.2.20
t=0 0
m=video 5000 RTP/AVP 96
a=rtpmap:96 H264/90000
m=audio 0 RTP/AVP 0
m=audio 4000 RTP/AVP 0
m=audio 4002 RTP/AVP 0
""")
    result = answer_offer(
        parse_sdp(offer),
        allowed_codecs=("ulaw",),
        local_address="192.0.2.1",
        local_port=10000,
        session_id=1,
    )
    assert result is not None
    assert [m.port for m in result.media] == [0, 0, 10000, 0]
    assert [m.media for m in result.media] == ["video", "audio", "audio", "audio"]
    assert result.media[0].formats == ["96"]


def test_ipv6_answer() -> None:
    data = answer(SIPP, local_address="2001:db8::1")
    assert data is not None
    assert b"o=- 42 0 IN IP6 2001:db8::1\r\n" in data
    assert b"c=IN IP6 2001:db8::1\r\n" in data


def test_make_offer_and_reoffer() -> None:
    offer = make_offer(
        allowed_codecs=("alaw", "ulaw"), local_address="192.0.2.1", local_port=10002, session_id=9
    )
    assert format_sdp(offer) == crlf("""
v=0
o=- 9 0 IN IP4 192.0.2.1
s=callway
c=IN IP4 192.0.2.1
t=0 0
m=audio 10002 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")
    hold = make_offer(
        allowed_codecs=("alaw",),
        local_address="192.0.2.1",
        local_port=10002,
        previous=offer,
        direction=Direction.SENDONLY,
        telephone_event_pt=None,
    )
    assert hold.origin.session_id == "9"
    assert hold.origin.session_version == 1
    assert hold.media[0].direction is Direction.SENDONLY
    again = make_offer(
        allowed_codecs=("alaw",), local_address="192.0.2.1", local_port=10002, previous=hold
    )
    assert again.origin.session_version == 2


def test_reoffer_keeps_m_line_positions() -> None:
    first = answer_offer(
        parse_sdp(SOFTPHONE.replace(b"RTP/SAVP", b"RTP/AVP")),
        allowed_codecs=("ulaw",),
        local_address="192.0.2.1",
        local_port=10000,
        session_id=5,
    )
    assert first is not None
    first.media.reverse()  # video first, then audio
    reoffer = make_offer(
        allowed_codecs=("ulaw",), local_address="192.0.2.1", local_port=10000, previous=first
    )
    assert [(m.media, m.port) for m in reoffer.media] == [("video", 0), ("audio", 10000)]


def test_make_offer_needs_a_codec_and_an_id() -> None:
    with pytest.raises(ValueError, match="at least one codec"):
        make_offer(allowed_codecs=(), local_address="192.0.2.1", local_port=1, session_id=1)
    with pytest.raises(ValueError, match="session_id"):
        make_offer(allowed_codecs=("ulaw",), local_address="192.0.2.1", local_port=1)


def test_offer_answer_between_two_callway_legs() -> None:
    offer = make_offer(
        allowed_codecs=("ulaw", "alaw"), local_address="192.0.2.1", local_port=10002, session_id=3
    )
    result = answer_offer(
        parse_sdp(format_sdp(offer)),
        allowed_codecs=("alaw",),
        local_address="192.0.2.2",
        local_port=20000,
        session_id=4,
    )
    assert result is not None
    fmt = audio_format(result)
    assert fmt is not None
    assert (fmt.codec.name, fmt.event_pt, fmt.ptime, fmt.direction) == (
        "alaw",
        101,
        20,
        Direction.SENDRECV,
    )


# --- anchoring -----------------------------------------------------------


def test_media_target() -> None:
    assert media_target(parse_sdp(BARESIP)) == media_target(parse_sdp(BARESIP), 0)
    target = media_target(parse_sdp(PJSUA))
    assert target is not None
    assert target.rtp == ("198.51.100.30", 4000)
    assert target.rtcp == ("198.51.100.30", 4001)
    soft = media_target(parse_sdp(SOFTPHONE))
    assert soft is not None
    assert soft.rtcp == soft.rtp == ("203.0.113.5", 49170)
    hold = media_target(parse_sdp(SIPP.replace(b"127.0.0.1\r\nt", b"0.0.0.0\r\nt")))
    assert hold is not None
    assert hold.rtp is None
    assert media_target(parse_sdp(SIPP.replace(b"audio 6000", b"audio 0"))) is None


def test_rewrite_connection_preserves_everything_else() -> None:
    original = parse_sdp(PJSUA)
    moved = rewrite_connection(original, "192.0.2.1", 12000)
    expected = (
        PJSUA.replace(b"198.51.100.30", b"192.0.2.1")
        .replace(b"m=audio 4000", b"m=audio 12000")
        .replace(b"a=rtcp:4001", b"a=rtcp:12001")
    )
    assert format_sdp(moved) == expected
    assert format_sdp(original) == PJSUA  # the input is not modified


def test_rewrite_connection_keeps_hold_address_and_other_streams() -> None:
    held = SOFTPHONE.replace(b"c=IN IP4 203.0.113.5\r\nb", b"c=IN IP4 0.0.0.0\r\nb")
    moved = format_sdp(rewrite_connection(parse_sdp(held), "192.0.2.1", 12000, rtcp_port=12001))
    assert b"c=IN IP4 0.0.0.0\r\nb=CT:128" in moved
    assert b"m=audio 12000 RTP/SAVP" in moved
    assert b"m=video 51372/2 RTP/AVP 99" in moved
    assert b"i=voice\r\nc=IN IP4 192.0.2.1\r\n" in moved
    assert b"inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR" in moved

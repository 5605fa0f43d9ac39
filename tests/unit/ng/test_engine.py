"""The ng engine in memory: offer/answer/delete state, SDP rewriting, cookies, timeouts.

The media relay is a fake here: a pool handing out port numbers and
streams recording where each leg was pointed; no socket is opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from callway.ng.bencode import BValue, decode, encode
from callway.ng.engine import NgEngine
from callway.ng.media import LegCounters, LegName, OutOfPortsError
from callway.sdp import media_target, parse_sdp

RELAY = "203.0.113.9"

OFFER_A = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 0 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=rtcp:49171\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)
ANSWER_B = (
    "v=0\r\n"
    "o=bob 2808844564 2808844564 IN IP4 198.51.100.20\r\n"
    "s=-\r\n"
    "c=IN IP4 198.51.100.20\r\n"
    "t=0 0\r\n"
    "m=audio 30000 RTP/AVP 0 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)


# --------------------------------------------------------------------------
# a fake relay
# --------------------------------------------------------------------------
@dataclass
class FakeLeg:
    local_port: int
    rtp: tuple[str, int] | None = None
    rtcp: tuple[str, int] | None = None

    def set_remote(self, rtp: tuple[str, int] | None, rtcp: tuple[str, int] | None = None) -> None:
        self.rtp, self.rtcp = rtp, rtcp


@dataclass
class FakeStream:
    pool: FakePool
    a: FakeLeg
    b: FakeLeg
    closed: bool = False
    last_packet: dict[str, float] = field(default_factory=dict)
    packets: dict[str, int] = field(default_factory=dict)

    def leg(self, name: LegName) -> FakeLeg:
        return self.a if name == "a" else self.b

    def counters(self, name: LegName) -> LegCounters:
        leg = self.leg(name)
        return LegCounters(
            packets_in=self.packets.get(name, 0),
            bytes_in=self.packets.get(name, 0) * 172,
            last_packet=self.last_packet.get(name),
            remote=leg.rtp,
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.free += [self.a.local_port, self.b.local_port]


@dataclass
class FakePool:
    free: list[int] = field(default_factory=lambda: list(range(40000, 40020, 2)))
    opened: list[FakeStream] = field(default_factory=list)

    def __call__(self) -> FakeStream:
        if len(self.free) < 2:
            raise OutOfPortsError("no ports")
        stream = FakeStream(self, FakeLeg(self.free.pop(0)), FakeLeg(self.free.pop(0)))
        self.opened.append(stream)
        return stream

    @property
    def in_use(self) -> int:
        return sum(2 for s in self.opened if not s.closed)


@pytest.fixture
def pool() -> FakePool:
    return FakePool()


@pytest.fixture
def engine(pool: FakePool) -> NgEngine:
    return NgEngine(pool, RELAY, timeout=60.0)


class Client:
    """Sends requests to the engine under fresh cookies, decodes the replies."""

    def __init__(self, engine: NgEngine) -> None:
        self.engine = engine
        self.seq = 0
        self.now = 1000.0

    def raw(self, cookie: bytes, payload: bytes) -> dict[bytes, BValue]:
        reply = self.engine.receive(cookie + b" " + payload, self.now)
        assert reply is not None
        got_cookie, _, body = reply.partition(b" ")
        assert got_cookie == cookie
        value = decode(body)
        assert isinstance(value, dict)
        return value

    def __call__(self, command: str, **keys: object) -> dict[bytes, BValue]:
        self.seq += 1
        request = {"command": command, **{k.replace("_", "-"): v for k, v in keys.items()}}
        return self.raw(b"%d_1_%d" % (self.seq, self.seq), encode(request))  # type: ignore[arg-type]


@pytest.fixture
def ng(engine: NgEngine) -> Client:
    return Client(engine)


def ok_sdp(reply: dict[bytes, BValue]) -> str:
    assert reply[b"result"] == b"ok", reply
    sdp = reply[b"sdp"]
    assert isinstance(sdp, bytes)
    return sdp.decode()


def offer_answer(ng: Client, call_id: str = "call-1") -> tuple[str, str]:
    offered = ok_sdp(ng("offer", call_id=call_id, from_tag="A", sdp=OFFER_A))
    answered = ok_sdp(ng("answer", call_id=call_id, from_tag="A", to_tag="B", sdp=ANSWER_B))
    return offered, answered


# --------------------------------------------------------------------------
# offer / answer / delete
# --------------------------------------------------------------------------
def test_ping_pongs(ng: Client) -> None:
    assert ng("ping") == {b"result": b"pong"}


def test_offer_rewrites_address_and_ports_to_the_relay(ng: Client, pool: FakePool) -> None:
    offered = ok_sdp(ng("offer", call_id="call-1", from_tag="A", sdp=OFFER_A))
    stream = pool.opened[0]
    desc = parse_sdp(offered)
    assert desc.connection is not None and desc.connection.address == RELAY
    audio = desc.media[0]
    assert audio.port == stream.b.local_port  # B sends to the B-facing leg
    assert audio.get("rtcp") == str(stream.b.local_port + 1)
    # codecs, fmtp, ptime, direction pass unchanged; o= keeps the offerer's address
    assert audio.formats == ["0", "101"]
    assert audio.fmtp(101) == "0-15" and audio.ptime == 20 and audio.has("sendrecv")
    assert desc.origin.address == "192.0.2.10"
    # the A-facing leg sends to A's address from its SDP
    assert stream.a.rtp == ("192.0.2.10", 49170)
    assert stream.a.rtcp == ("192.0.2.10", 49171)
    assert stream.b.rtp is None


def test_answer_rewrites_to_the_offerer_facing_leg(ng: Client, pool: FakePool) -> None:
    _offered, answered = offer_answer(ng)
    stream = pool.opened[0]
    desc = parse_sdp(answered)
    target = media_target(desc)
    assert target is not None
    assert target.rtp == (RELAY, stream.a.local_port)
    assert stream.b.rtp == ("198.51.100.20", 30000)
    assert stream.b.rtcp == ("198.51.100.20", 30001)
    assert len(pool.opened) == 1  # the answer opened nothing new


def test_replace_origin_moves_the_origin_address(ng: Client) -> None:
    reply = ng("offer", call_id="c", from_tag="A", sdp=OFFER_A, replace=["origin"])
    assert parse_sdp(ok_sdp(reply)).origin.address == RELAY


def test_delete_frees_every_port(ng: Client, pool: FakePool, engine: NgEngine) -> None:
    offer_answer(ng)
    assert pool.in_use == 2
    reply = ng("delete", call_id="call-1", from_tag="A", to_tag="B")
    assert reply[b"result"] == b"ok"
    assert pool.in_use == 0
    assert engine.calls == {}
    assert ng("list")[b"calls"] == []
    again = ng("delete", call_id="call-1", from_tag="A")  # a second BYE: a warning, as rtpengine
    assert again == {b"result": b"ok", b"warning": b"Call-ID not found or tags didn't match"}


def test_delete_by_the_callee_tag_or_without_tags(ng: Client, pool: FakePool) -> None:
    offer_answer(ng, "c1")
    offer_answer(ng, "c2")
    assert ng("delete", call_id="c1", from_tag="B")[b"result"] == b"ok"  # BYE from the callee
    assert ng("delete", call_id="c2")[b"result"] == b"ok"
    assert pool.in_use == 0


def test_delete_with_unknown_tags_is_a_warning_and_keeps_the_call(
    ng: Client, pool: FakePool
) -> None:
    offer_answer(ng)
    reply = ng("delete", call_id="call-1", from_tag="X")
    assert reply[b"warning"] == b"Call-ID not found or tags didn't match"
    assert pool.in_use == 2


def test_failed_call_is_deleted_by_the_failure_reply_tags(ng: Client, pool: FakePool) -> None:
    """486 from the callee: Kamailio deletes with the callee's (unknown) to-tag."""
    ok_sdp(ng("offer", call_id="c", from_tag="A", sdp=OFFER_A))
    assert ng("delete", call_id="c", from_tag="A", to_tag="busy-tag")[b"result"] == b"ok"
    assert pool.in_use == 0


def test_delete_delay_frees_later(ng: Client, pool: FakePool, engine: NgEngine) -> None:
    offer_answer(ng)
    assert ng("delete", call_id="call-1", delete_delay=5)[b"result"] == b"ok"
    assert pool.in_use == 2
    assert engine.expire(ng.now + 4.9) == []
    assert engine.expire(ng.now + 5.0) == ["call-1"]
    assert pool.in_use == 0


def test_answer_without_offer_is_an_error(ng: Client) -> None:
    reply = ng("answer", call_id="nope", from_tag="A", to_tag="B", sdp=ANSWER_B)
    assert reply == {b"result": b"error", b"error-reason": b"Unknown call-id"}


def test_missing_keys_and_bad_sdp_are_errors(ng: Client, pool: FakePool) -> None:
    assert ng("offer", from_tag="A", sdp=OFFER_A)[b"error-reason"] == b"No call-id in message"
    assert ng("offer", call_id="c", sdp=OFFER_A)[b"error-reason"] == b"No from-tag in message"
    assert ng("offer", call_id="c", from_tag="A")[b"error-reason"] == b"No SDP body in message"
    reply = ng("offer", call_id="c", from_tag="A", sdp="v=1\r\n")
    assert reply[b"result"] == b"error"
    assert bytes(reply[b"error-reason"]).startswith(b"Failed to parse SDP")  # type: ignore[arg-type]
    assert ng("frobnicate")[b"error-reason"] == b"Unrecognized command"
    assert pool.in_use == 0


def test_out_of_ports_is_reported_and_leaks_nothing(pool: FakePool) -> None:
    pool.free = [40000, 40002, 40004]  # one stream's worth
    ng = Client(NgEngine(pool, RELAY))
    ok_sdp(ng("offer", call_id="c1", from_tag="A", sdp=OFFER_A))
    reply = ng("offer", call_id="c2", from_tag="A", sdp=OFFER_A)
    assert reply == {b"result": b"error", b"error-reason": b"Ran out of ports"}
    assert ng("list")[b"calls"] == [b"c1"]


# --------------------------------------------------------------------------
# re-INVITEs, hold, several streams, ICE
# --------------------------------------------------------------------------
def test_reinvite_from_the_callee_uses_the_same_dialog(ng: Client, pool: FakePool) -> None:
    offer_answer(ng)
    stream = pool.opened[0]
    moved_b = ANSWER_B.replace("198.51.100.20", "198.51.100.21").replace("30000", "30100")
    reoffer = ok_sdp(ng("offer", call_id="call-1", from_tag="B", to_tag="A", sdp=moved_b))
    assert media_target(parse_sdp(reoffer)).rtp == (RELAY, stream.a.local_port)  # type: ignore[union-attr]
    assert stream.b.rtp == ("198.51.100.21", 30100)
    moved_a = OFFER_A.replace("49170", "49270").replace("a=rtcp:49171\r\n", "")
    reanswer = ok_sdp(ng("answer", call_id="call-1", from_tag="B", to_tag="A", sdp=moved_a))
    assert media_target(parse_sdp(reanswer)).rtp == (RELAY, stream.b.local_port)  # type: ignore[union-attr]
    assert stream.a.rtp == ("192.0.2.10", 49270)
    assert stream.a.rtcp == ("192.0.2.10", 49271)
    assert len(pool.opened) == 1


def test_reinvite_from_the_caller_keeps_the_ports(ng: Client, pool: FakePool) -> None:
    first, _ = offer_answer(ng)
    again = ok_sdp(ng("offer", call_id="call-1", from_tag="A", to_tag="B", sdp=OFFER_A))
    assert parse_sdp(again).media[0].port == parse_sdp(first).media[0].port
    assert len(pool.opened) == 1


def test_hold_address_is_kept_and_sends_nowhere(ng: Client, pool: FakePool) -> None:
    offer_answer(ng)
    hold = OFFER_A.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0").replace(
        "a=sendrecv", "a=sendonly"
    )
    out = parse_sdp(ok_sdp(ng("offer", call_id="call-1", from_tag="A", to_tag="B", sdp=hold)))
    assert out.connection is not None and out.connection.address == "0.0.0.0"
    assert out.media[0].has("sendonly")
    assert pool.opened[0].a.rtp is None


def test_each_stream_gets_its_own_ports_and_others_stay_untouched(
    ng: Client, pool: FakePool
) -> None:
    sdp = (
        OFFER_A
        + "m=video 49180 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        + "m=audio 0 RTP/AVP 0\r\n"
        + "m=message 7394 TCP/MSRP *\r\na=path:msrp://192.0.2.10:7394/s;tcp\r\n"
    )
    out = parse_sdp(ok_sdp(ng("offer", call_id="c", from_tag="A", sdp=sdp)))
    audio, video = pool.opened
    assert out.media[0].port == audio.b.local_port
    assert out.media[1].port == video.b.local_port
    assert video.a.rtp == ("192.0.2.10", 49180)
    assert out.media[2].port == 0
    msrp = out.media[3]
    assert msrp.port == 7394
    assert out.connection_for(msrp) is not None
    assert out.connection_for(msrp).address == "192.0.2.10"  # type: ignore[union-attr]
    # the answer rejects video: its ports are freed
    answer = ANSWER_B + "m=video 0 RTP/AVP 96\r\nm=audio 0 RTP/AVP 0\r\nm=message 0 TCP/MSRP *\r\n"
    ok_sdp(ng("answer", call_id="c", from_tag="A", to_tag="B", sdp=answer))
    assert video.closed and not audio.closed


def test_ice_attributes_are_removed_from_relayed_streams(ng: Client) -> None:
    sdp = OFFER_A.replace(
        "a=sendrecv\r\n",
        "a=sendrecv\r\na=ice-ufrag:F7gI\r\na=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n"
        "a=candidate:1 1 UDP 2130706431 192.0.2.10 49170 typ host\r\n",
    ).replace("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\n")
    reply = ng("offer", call_id="c", from_tag="A", sdp=sdp, ICE="remove")
    text = ok_sdp(reply)
    assert "candidate" not in text and "ice-" not in text
    assert "a=sendrecv" in text
    forced = ng("offer", call_id="d", from_tag="A", sdp=sdp, ICE="force")
    assert b"warning" in forced


def test_sip_source_address_flag_uses_where_the_signalling_came_from(
    ng: Client, pool: FakePool
) -> None:
    private = OFFER_A.replace("192.0.2.10", "10.0.0.5")
    ok_sdp(
        ng(
            "offer", call_id="c", from_tag="A", sdp=private,
            flags=["SIP-source-address"], received_from=["IP4", "192.0.2.99"],
        )
    )  # fmt: skip
    assert pool.opened[0].a.rtp == ("192.0.2.99", 49170)


# --------------------------------------------------------------------------
# cookies
# --------------------------------------------------------------------------
def test_a_retransmitted_offer_gets_the_cached_reply_and_allocates_once(
    ng: Client, pool: FakePool, engine: NgEngine
) -> None:
    payload = encode({"command": "offer", "call-id": "c", "from-tag": "A", "sdp": OFFER_A})
    first = engine.receive(b"5_77_1 " + payload, 1000.0)
    again = engine.receive(b"5_77_1 " + payload, 1000.5)
    assert first is not None and first == again
    assert len(pool.opened) == 1
    assert engine.cache.hits == 1
    other = engine.receive(b"5_77_2 " + payload, 1001.0)  # a new cookie: a real re-offer
    assert other is not None and other.split(b" ", 1)[1] == first.split(b" ", 1)[1]
    assert len(pool.opened) == 1


def test_errors_are_cached_too_and_garbage_never_raises(engine: NgEngine) -> None:
    assert engine.receive(b"no-cookie-here", 1.0) is None
    assert engine.dropped == 1
    reply = engine.receive(b"k1 d7:command", 1.0)
    assert reply is not None and reply.startswith(b"k1 ")
    assert b"Failed to decode dictionary" in reply
    assert engine.receive(b"k1 d7:command4:pinge", 2.0) == reply  # same cookie: same reply


# --------------------------------------------------------------------------
# timeouts and queries
# --------------------------------------------------------------------------
def test_silent_calls_time_out_and_media_keeps_them(
    ng: Client, pool: FakePool, engine: NgEngine
) -> None:
    offer_answer(ng, "quiet")
    offer_answer(ng, "talking")
    talking = pool.opened[1]
    talking.last_packet["a"] = ng.now + 50.0
    assert engine.expire(ng.now + 59.0) == []
    assert engine.expire(ng.now + 60.0) == ["quiet"]
    assert pool.opened[0].closed and not talking.closed
    assert engine.expire(ng.now + 110.0) == ["talking"]
    assert pool.in_use == 0


def test_query_reports_ports_endpoints_and_counters(ng: Client, pool: FakePool) -> None:
    offer_answer(ng)
    stream = pool.opened[0]
    stream.packets.update(a=10, b=7)
    stream.last_packet["a"] = ng.now
    reply = ng("query", call_id="call-1")
    assert reply[b"result"] == b"ok"
    tags = reply[b"tags"]
    assert isinstance(tags, dict) and set(tags) == {b"A", b"B"}
    a = tags[b"A"]
    assert isinstance(a, dict)
    assert a[b"in dialogue with"] == b"B"
    (media,) = a[b"medias"]  # type: ignore[misc]
    (entry,) = media[b"streams"]
    assert entry[b"local port"] == stream.a.local_port
    assert entry[b"endpoint"] == {b"family": b"IPv4", b"address": b"192.0.2.10", b"port": 49170}
    assert entry[b"stats"][b"packets"] == 10
    totals = reply[b"totals"]
    assert isinstance(totals, dict)
    assert totals[b"RTP"] == {b"packets": 17, b"bytes": 17 * 172, b"errors": 0}
    assert ng("query", call_id="other")[b"result"] == b"error"


def test_list_is_limited(ng: Client) -> None:
    for n in range(3):
        ok_sdp(ng("offer", call_id=f"c{n}", from_tag="A", sdp=OFFER_A))
    assert ng("list")[b"calls"] == [b"c0", b"c1", b"c2"]
    assert ng("list", limit=2)[b"calls"] == [b"c0", b"c1"]


def test_close_frees_everything(ng: Client, pool: FakePool, engine: NgEngine) -> None:
    offer_answer(ng, "x")
    offer_answer(ng, "y")
    engine.close()
    assert pool.in_use == 0 and engine.streams == 0


def test_query_before_the_answer_shows_the_untagged_side(ng: Client, pool: FakePool) -> None:
    ok_sdp(ng("offer", call_id="c", from_tag="A", sdp=OFFER_A))
    tags = ng("query", call_id="c")[b"tags"]
    assert isinstance(tags, dict)
    assert set(tags) == {b"A", b"<untagged 2>"}  # rtpengine lists the answerer to come so
    untagged = tags[b"<untagged 2>"]
    assert untagged[b"tag"] == b"" and untagged[b"in dialogue with"] == b"A"  # type: ignore[index,call-overload]
    (media,) = untagged[b"medias"]  # type: ignore[index,call-overload]
    assert media[b"streams"][0][b"local port"] == pool.opened[0].b.local_port


def test_media_address_overrides_the_sdp_address(ng: Client, pool: FakePool) -> None:
    ok_sdp(ng("offer", call_id="c", from_tag="A", sdp=OFFER_A, media_address="192.0.2.50"))
    assert pool.opened[0].a.rtp == ("192.0.2.50", 49170)


def test_transport_protocol_changes_are_refused_not_ignored(ng: Client, pool: FakePool) -> None:
    same = ng("offer", call_id="c", from_tag="A", sdp=OFFER_A, transport_protocol="RTP/AVP")
    ok_sdp(same)
    srtp = ng("offer", call_id="d", from_tag="A", sdp=OFFER_A, transport_protocol="RTP/SAVP")
    assert srtp[b"result"] == b"error"
    assert b"transport-protocol" in srtp[b"error-reason"]  # type: ignore[operator]
    assert pool.in_use == 2  # only the first call holds ports


def test_codec_options_are_ignored_with_a_warning(ng: Client) -> None:
    reply = ng("offer", call_id="c", from_tag="A", sdp=OFFER_A, codec={"strip": ["PCMA"]})
    assert b"m=audio" in reply[b"sdp"]  # type: ignore[operator]
    assert b"codec" in reply[b"warning"]  # type: ignore[operator]

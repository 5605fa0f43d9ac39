"""SRTP on relay legs (RFC 3711 with RFC 4568 keys): ciphers, relay bridging, negotiation.

The reference peer for the cipher is pylibsrtp's public ``Session`` API on
its own keys, so callway's fast path is checked against libsrtp as phones
use it, not against itself.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Iterator

import pylibsrtp
import pytest

from callway.app.b2bua.media import CallMedia
from callway.media.ports import PortPool
from callway.media.relay import RelaySession
from callway.media.srtp import BlockedLeg, LegSrtp, SrtpCipher
from callway.rtp.packet import build_rtp
from callway.rtp.transcode import g711_transcoder
from callway.sdp import format_sdp, parse_sdp
from callway.sdp.crypto import CryptoAttribute
from callway.sdp.errors import SdpError

HOST = "127.0.0.1"
WAIT = 2.0
QUIET = 0.3
SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")


def rtp(seq: int, payload: bytes = b"\xd5" * 160, pt: int = 0) -> bytes:
    return build_rtp(pt, seq, seq * 160, 0x1234, payload)


def rtcp_sr(ssrc: int = 0x1234) -> bytes:
    # RFC 3550 §6.4.1: a sender report without report blocks (28 bytes).
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5)


def phone_session(crypto: CryptoAttribute, *, outbound: bool) -> pylibsrtp.Session:
    profile = {
        "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    }[crypto.suite]
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(
        pylibsrtp.Policy(key=crypto.key_salt, ssrc_type=kind, srtp_profile=profile)
    )


@pytest.mark.parametrize("suite", SUITES)
def test_cipher_interoperates_with_libsrtp_sessions(suite: str) -> None:
    key = CryptoAttribute.generate(1, suite)
    ours_out = SrtpCipher(suite, key.key_salt, outbound=True)
    ours_in = SrtpCipher(suite, key.key_salt, outbound=False)
    theirs_in, theirs_out = phone_session(key, outbound=False), phone_session(key, outbound=True)
    tag = 10 if suite.endswith("80") else 4
    for seq in range(50):
        packet = rtp(seq, bytes([seq]) * 160)
        protected = ours_out.rtp(packet)
        assert protected is not None and len(protected) == len(packet) + tag
        assert protected[12:172] != packet[12:]
        assert theirs_in.unprotect(protected) == packet
        assert ours_in.rtp(theirs_out.protect(packet)) == packet
    report = rtcp_sr()
    srtcp = ours_out.rtcp(report)
    assert srtcp is not None and theirs_in.unprotect_rtcp(srtcp) == report
    assert ours_in.rtcp(theirs_out.protect_rtcp(report)) == report
    assert ours_out.failures == ours_in.failures == 0


def test_cipher_accepts_bytearray_from_transcoding() -> None:
    key = CryptoAttribute.generate(1, SUITES[0])
    cipher = SrtpCipher(key.suite, key.key_salt, outbound=True)
    packet = rtp(1)
    assert phone_session(key, outbound=False).unprotect(cipher.rtp(bytearray(packet))) == packet  # type: ignore[arg-type]


def test_bad_tag_replay_and_garbage_are_dropped_and_counted() -> None:
    phone_key, our_key = (CryptoAttribute.generate(1, SUITES[0]) for _ in range(2))
    leg = LegSrtp(our_key, phone_key)
    phone = phone_session(phone_key, outbound=True)
    good = phone.protect(rtp(1))
    assert leg.unprotect(good) == rtp(1)
    assert leg.unprotect(good) is None  # replayed (RFC 3711 §3.3.2)
    tampered = bytearray(phone.protect(rtp(2)))
    tampered[20] ^= 0x01
    assert leg.unprotect(bytes(tampered)) is None  # bad authentication tag
    assert leg.unprotect(rtp(3)) is None  # plain RTP from an SRTP phone
    assert leg.auth_failures == 3
    assert leg.unprotect(b"\x00\x01\x00\x00" + bytes(16)) is None  # STUN: not RTP
    assert leg.unprotect_rtcp(b"\x00") is None
    assert leg.dropped_plain == 2
    assert leg.unprotect(phone.protect(rtp(4))) == rtp(4)  # the stream goes on
    assert leg.unprotect(b"\x80" + bytes(3000)) is None  # larger than any relayed datagram
    assert leg.protect(b"\x00" * 20) is None  # plain side garbage is not protected
    assert (leg.auth_failures, leg.dropped_plain) == (4, 2)


def test_wrong_key_fails_every_packet() -> None:
    sender, other = (CryptoAttribute.generate(1, SUITES[0]) for _ in range(2))
    leg = LegSrtp(CryptoAttribute.generate(1, SUITES[0]), other)
    phone = phone_session(sender, outbound=True)
    assert all(leg.unprotect(phone.protect(rtp(n))) is None for n in range(10))
    assert leg.auth_failures == 10


def test_muxed_rtcp_goes_through_srtcp() -> None:
    phone_key, our_key = (CryptoAttribute.generate(1, SUITES[1]) for _ in range(2))
    leg = LegSrtp(our_key, phone_key)
    phone_out, phone_in = (
        phone_session(phone_key, outbound=True),
        phone_session(our_key, outbound=False),
    )
    assert leg.unprotect(phone_out.protect_rtcp(rtcp_sr())) == rtcp_sr()
    muxed = leg.protect(rtcp_sr())
    assert muxed is not None and phone_in.unprotect_rtcp(muxed) == rtcp_sr()


def test_suites_must_match_and_repr_hides_keys() -> None:
    with pytest.raises(ValueError):
        LegSrtp(CryptoAttribute.generate(1, SUITES[0]), CryptoAttribute.generate(1, SUITES[1]))
    with pytest.raises(ValueError):
        SrtpCipher(SUITES[0], b"short", outbound=True)
    key = CryptoAttribute.generate(1, SUITES[0])
    leg = LegSrtp(key, key)
    assert str(key).split("inline:")[1] not in repr(leg)


def test_blocked_leg_passes_nothing() -> None:
    blocked = BlockedLeg()
    assert blocked.unprotect(rtp(1)) is None and blocked.protect(rtp(1)) is None
    assert blocked.unprotect_rtcp(rtcp_sr()) is None and blocked.protect_rtcp(rtcp_sr()) is None


# -- the relay -----------------------------------------------------------------------------


@pytest.fixture
def pool() -> Iterator[PortPool]:
    start = random.randrange(40000, 58000, 2)
    pool = PortPool(HOST, start, start + 400)
    yield pool
    assert pool.in_use == 0, "a test leaked relay ports"


def phone() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    return sock


def address(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()
    return host, port


async def receive(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), WAIT)
    return data


async def nothing_arrives(sock: socket.socket) -> bool:
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), QUIET)
    except TimeoutError:
        return True
    return False


def test_relay_bridges_srtp_leg_to_plain_leg(pool: PortPool) -> None:
    async def scenario() -> None:
        phone_key, our_key = (CryptoAttribute.generate(1, SUITES[0]) for _ in range(2))
        srtp_phone, plain_phone, srtp_rtcp, plain_rtcp = phone(), phone(), phone(), phone()
        to_relay, from_relay = (
            phone_session(phone_key, outbound=True),
            phone_session(our_key, outbound=False),
        )
        with RelaySession(pool, host=HOST) as session:
            session.a.set_remote(address(srtp_phone), address(srtp_rtcp))
            session.b.set_remote(address(plain_phone), address(plain_rtcp))
            session.set_srtp("a", LegSrtp(our_key, phone_key))
            session.start()
            relay_a = (HOST, session.a.local_port)
            relay_b = (HOST, session.b.local_port)
            for seq in range(10):
                srtp_phone.sendto(to_relay.protect(rtp(seq, bytes([seq]) * 160)), relay_a)
                assert await receive(plain_phone) == rtp(seq, bytes([seq]) * 160)
                plain_phone.sendto(rtp(seq, bytes([seq + 1]) * 160), relay_b)
                received = await receive(srtp_phone)
                assert received != rtp(seq, bytes([seq + 1]) * 160)
                assert from_relay.unprotect(received) == rtp(seq, bytes([seq + 1]) * 160)
            # SRTCP on the RTCP ports, both ways
            srtp_rtcp.sendto(to_relay.protect_rtcp(rtcp_sr()), (HOST, session.a.local_rtcp_port))
            assert await receive(plain_rtcp) == rtcp_sr()
            plain_rtcp.sendto(rtcp_sr(7), (HOST, session.b.local_rtcp_port))
            assert from_relay.unprotect_rtcp(await receive(srtp_rtcp)) == rtcp_sr(7)
            # a forged packet and plain RTP from the SRTP side are dropped and counted
            srtp_phone.sendto(rtp(50), relay_a)
            assert await nothing_arrives(plain_phone)
            stats = session.a.stats()
            assert stats.rejected == 1 and stats.srtp == "AES_CM_128_HMAC_SHA1_80"
            # locally made packets (prompts) are protected too
            session.a.send_rtp(rtp(60), address(srtp_phone))
            assert from_relay.unprotect(await receive(srtp_phone)) == rtp(60)

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_relay_composes_srtp_with_transcoding_and_two_key_sets(pool: PortPool) -> None:
    async def scenario() -> None:
        keys = [CryptoAttribute.generate(1, suite) for suite in (*SUITES, *SUITES)]
        a_phone_key, b_phone_key, a_our, b_our = keys[0], keys[1], keys[2], keys[3]
        phone_a, phone_b = phone(), phone()
        with RelaySession(pool, host=HOST) as session:
            session.a.set_remote(address(phone_a))
            session.b.set_remote(address(phone_b))
            session.set_srtp("a", LegSrtp(a_our, a_phone_key))
            session.set_srtp("b", LegSrtp(b_our, b_phone_key))
            session.set_transcoding(
                g711_transcoder("alaw", "ulaw"), g711_transcoder("ulaw", "alaw")
            )
            session.start()
            a_out = phone_session(a_phone_key, outbound=True)
            b_in = phone_session(b_our, outbound=False)
            sent = rtp(1, b"\xd5" * 160, pt=8)
            phone_a.sendto(a_out.protect(sent), (HOST, session.a.local_port))
            plain = b_in.unprotect(await receive(phone_b))
            assert plain[1] == 0 and plain[12:] == g711_transcoder("alaw", "ulaw").apply(sent)[12:]
            session.set_srtp("b", None)  # back to plain on b: takes effect at once
            phone_a.sendto(a_out.protect(rtp(2, pt=8)), (HOST, session.a.local_port))
            assert (await receive(phone_b))[1] == 0

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_relay_transforms_srtp_in_place_both_keyed_stun_and_rekey(pool: PortPool) -> None:
    """SRTP-only directions run in the scratch buffer; the result is what the bytes path gives."""
    from callway.stun.message import MessageClass, Method, StunMessage, decode, encode

    async def scenario() -> None:
        a_phone_key, b_phone_key, a_our, b_our = (
            CryptoAttribute.generate(1, SUITES[n % 2]) for n in range(4)
        )
        phone_a, phone_b = phone(), phone()
        with RelaySession(pool, host=HOST) as session:
            session.a.set_remote(address(phone_a))
            session.b.set_remote(address(phone_b))
            session.start()
            relay_a = (HOST, session.a.local_port)
            phone_a.sendto(rtp(1), relay_a)  # plain both ways first
            assert await receive(phone_b) == rtp(1)
            assert session.a.rtp.into is None and session.b.rtp.into is None
            session.set_srtp("a", LegSrtp(a_our, a_phone_key))  # while running
            session.set_srtp("b", LegSrtp(b_our, b_phone_key))
            assert session.a.rtp.into is not None and session.b.rtp.into is not None
            a_out, a_in = (
                phone_session(a_phone_key, outbound=True),
                phone_session(a_our, outbound=False),
            )
            b_out, b_in = (
                phone_session(b_phone_key, outbound=True),
                phone_session(b_our, outbound=False),
            )
            for seq in range(2, 6):
                phone_a.sendto(a_out.protect(rtp(seq)), relay_a)
                assert b_in.unprotect(await receive(phone_b)) == rtp(seq)
                phone_b.sendto(b_out.protect(rtp(seq, b"\x55" * 20)), (HOST, session.b.local_port))
                assert a_in.unprotect(await receive(phone_a)) == rtp(seq, b"\x55" * 20)
            # RTCP multiplexed on the RTP port (RFC 5761) takes SRTCP in place too
            phone_a.sendto(a_out.protect_rtcp(rtcp_sr()), relay_a)
            assert b_in.unprotect_rtcp(await receive(phone_b)) == rtcp_sr()
            # a STUN Binding on the SRTP port is answered (RFC 7983), not relayed
            request = StunMessage(Method.BINDING, MessageClass.REQUEST, b"\x02" * 12)
            phone_a.sendto(encode(request), relay_a)
            assert decode(await receive(phone_a)).address(0x0020) is not None
            # forged SRTP and non-RTP garbage are dropped and counted
            phone_a.sendto(rtp(9), relay_a)
            phone_a.sendto(b"\x40" + bytes(30), relay_a)
            assert await nothing_arrives(phone_b)
            leg = session.a.srtp
            assert isinstance(leg, LegSrtp)
            assert (leg.auth_failures, leg.dropped_plain, session.a.stats().rejected) == (1, 1, 2)
            assert session.b.stats().packets_out == 6
            # transcoding takes the bytes path again, at once
            session.set_transcoding(g711_transcoder("ulaw", "alaw"))
            assert session.a.rtp.into is None and session.b.rtp.into is not None
            phone_a.sendto(a_out.protect(rtp(10)), relay_a)
            assert b_in.unprotect(await receive(phone_b))[1] == 8

    asyncio.run(asyncio.wait_for(scenario(), 20))


# -- negotiation on a call -----------------------------------------------------------------


def crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


def offer(proto: str, cryptos: list[CryptoAttribute]) -> bytes:
    lines = "".join(f"a=crypto:{c}\n" for c in cryptos)
    return crlf(f"""
v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 30000 {proto} 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
{lines}a=sendrecv
""")


def test_call_media_keys_each_leg_independently(pool: PortPool) -> None:
    async def scenario() -> None:
        media = CallMedia(pool, a_codecs=("ulaw",), a_host=HOST, a_encryption="sdes")
        try:
            assert isinstance(media.relay.a.srtp, BlockedLeg)  # no keys yet: nothing flows
            phone_keys = [CryptoAttribute.generate(5, SUITES[1])]
            assert media.answer("a", parse_sdp(offer("RTP/AVP", phone_keys))) is None  # 488
            body = media.answer("a", parse_sdp(offer("RTP/SAVP", phone_keys)))
            assert body is not None
            answer = parse_sdp(body).media[0]
            ours = CryptoAttribute.parse(answer.crypto[0])
            assert answer.proto == "RTP/SAVP" and (ours.tag, ours.suite) == (5, SUITES[1])
            srtp_a = media.relay.a.srtp
            assert isinstance(srtp_a, LegSrtp)
            again = media.answer("a", parse_sdp(offer("RTP/SAVP", phone_keys)))
            assert again is not None and parse_sdp(again).media[0].crypto == answer.crypto
            assert media.relay.a.srtp is srtp_a  # same keys: the contexts stay

            media.add_side_b(("ulaw",), HOST)  # a plain endpoint
            plain_offer = parse_sdp(media.offer("b")).media[0]
            assert plain_offer.proto == "RTP/AVP" and plain_offer.crypto == []
            media.take_answer("b", parse_sdp(offer("RTP/AVP", [])))
            assert media.relay.b.srtp is None
        finally:
            media.close()

    asyncio.run(scenario())


def test_call_media_offers_srtp_and_refuses_plain_answers(pool: PortPool) -> None:
    async def scenario() -> None:
        media = CallMedia(pool, a_codecs=("ulaw",), a_host=HOST)
        try:
            media.add_side_b(("ulaw",), HOST, "sdes")
            sent = parse_sdp(media.offer("b")).media[0]
            assert sent.proto == "RTP/SAVP"
            offered = [CryptoAttribute.parse(v) for v in sent.crypto]
            assert [(c.tag, c.suite) for c in offered] == [(1, SUITES[0]), (2, SUITES[1])]
            with pytest.raises(SdpError):
                media.take_answer("b", parse_sdp(offer("RTP/AVP", [])))
            assert isinstance(media.relay.b.srtp, BlockedLeg)
            bogus = CryptoAttribute.generate(3, SUITES[0])  # a tag we never offered
            with pytest.raises(SdpError):
                media.take_answer("b", parse_sdp(offer("RTP/SAVP", [bogus])))
            phone_key = CryptoAttribute.generate(2, SUITES[1])
            media.take_answer("b", parse_sdp(offer("RTP/SAVP", [phone_key])))
            srtp_b = media.relay.b.srtp
            assert isinstance(srtp_b, LegSrtp)
            assert srtp_b.local == offered[1] and srtp_b.remote == phone_key
            reoffer = parse_sdp(media.offer("b")).media[0]
            keys = {
                CryptoAttribute.parse(v).suite: CryptoAttribute.parse(v) for v in reoffer.crypto
            }
            assert keys[SUITES[1]].key_salt == offered[1].key_salt  # keys kept on re-offer
            assert format_sdp(parse_sdp(media.offer("b"))).count(b"a=crypto") == 2
        finally:
            media.close()

    asyncio.run(scenario())


def test_phone_rekey_keeps_our_outbound_context(pool: PortPool) -> None:
    async def scenario() -> None:
        media = CallMedia(pool, a_codecs=("ulaw",), a_host=HOST, a_encryption="sdes")
        try:
            first = CryptoAttribute.generate(1, SUITES[0])
            body = media.answer("a", parse_sdp(offer("RTP/SAVP", [first])))
            assert body is not None
            before = media.relay.a.srtp
            assert isinstance(before, LegSrtp)
            rekeyed = CryptoAttribute.generate(1, SUITES[0])  # a re-INVITE with a new key
            again = media.answer("a", parse_sdp(offer("RTP/SAVP", [rekeyed])))
            assert again is not None
            after = media.relay.a.srtp
            assert isinstance(after, LegSrtp) and after is not before
            assert after.remote == rekeyed and after.outbound is before.outbound
            assert parse_sdp(again).media[0].crypto == parse_sdp(body).media[0].crypto
        finally:
            media.close()

    asyncio.run(scenario())

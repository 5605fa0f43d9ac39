"""tos_audio: RTP and RTCP marked with the endpoint's DSCP, and a reused pair reset (RFC 2474)."""

from __future__ import annotations

import asyncio
import random
import socket

from callway.app.b2bua.media import CallMedia
from callway.media.ports import PortPool
from callway.transport.tos import set_tos

HOST = "127.0.0.1"
EF = 0xB8  # DSCP 46 << 2


def tos_of(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)


def pool() -> PortPool:
    start = random.randrange(40000, 59000, 2)
    return PortPool(HOST, start, start + 99)


def test_a_pair_is_marked_and_unmarked() -> None:
    pair = pool().allocate()
    try:
        pair.mark(EF)
        assert tos_of(pair.rtp) == tos_of(pair.rtcp) == EF
        pair.mark(0)
        assert tos_of(pair.rtp) == tos_of(pair.rtcp) == 0
    finally:
        pair.close()


def test_call_media_marks_each_side_with_its_endpoints_tos_audio() -> None:
    async def scenario() -> None:
        media = CallMedia(pool(), a_codecs=("ulaw",), a_host=HOST, a_tos=EF)
        try:
            media.add_side_b(("ulaw",), HOST, tos=0x60)
            a, b = media.relay.leg("a").pair, media.relay.leg("b").pair
            assert (tos_of(a.rtp), tos_of(a.rtcp)) == (EF, EF)
            assert (tos_of(b.rtp), tos_of(b.rtcp)) == (0x60, 0x60)
        finally:
            media.close()

    asyncio.run(scenario())


def test_the_marking_reaches_the_packets() -> None:
    """What a receiver sees in the IP header (IP_RECVTOS), over loopback."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind((HOST, 0))
        receiver.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        set_tos(sender, EF)
        sender.sendto(b"rtp", receiver.getsockname())
        _data, ancillary, _flags, _addr = receiver.recvmsg(64, socket.CMSG_SPACE(1))
        [(level, kind, value)] = ancillary
        assert (level, kind, value[0]) == (socket.IPPROTO_IP, socket.IP_TOS, EF)
    finally:
        sender.close()
        receiver.close()


def test_tos_audio_is_read_as_asterisk_writes_it() -> None:
    from callway.config.pjsip import parse_pjsip

    text = (
        "[phone]\ntype=endpoint\nallow=ulaw\ntos_audio=ef\n\n"
        "[trunk]\ntype=endpoint\nallow=ulaw\ntos_audio=0x60\n"
    )
    config = parse_pjsip(text, "pjsip.conf")
    assert config.endpoints["phone"].tos_audio == EF
    assert config.endpoints["trunk"].tos_audio == 0x60
    assert not config.warnings

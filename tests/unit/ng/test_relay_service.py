"""``callway relay``'s asyncio shell in-process: control socket, real relay sessions.

Loopback sockets only, no subprocess: the service listens on an ephemeral
port, two UDP sockets play the phones, and the ports of the pool must all be
free again after ``delete`` and after ``stop``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket

import pytest

from callway.app.relay_service import RelayService, RelaySettings, parse_listen, parse_ports
from callway.cli.main import build_parser
from callway.ng.bencode import BValue, decode, encode
from tests.helpers.ports import free_rtp_range

_cookies = itertools.count(1)


def test_listen_and_port_range_arguments() -> None:
    assert parse_listen("udp:127.0.0.1:2223") == ("127.0.0.1", 2223)
    assert parse_listen("10.0.0.5:22222") == ("10.0.0.5", 22222)
    assert parse_listen("udp:[::1]:2223") == ("::1", 2223)
    assert parse_listen("2223") == ("127.0.0.1", 2223)
    for bad in ("tcp:127.0.0.1:2223", "udp:127.0.0.1:x", "udp:127.0.0.1:0", "udp:1.2.3.4:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    assert parse_ports("30000-40000") == (30000, 40000)
    for bad in ("30000", "4-3", "0-10", "1-70000", "a-b"):
        with pytest.raises(ValueError):
            parse_ports(bad)


def test_relay_subcommand_is_registered() -> None:
    args = build_parser().parse_args(
        ["relay", "--listen", "udp:127.0.0.1:2300", "--media-ip", "127.0.0.2",
         "--ports", "31000-31010", "--timeout", "5"]
    )  # fmt: skip
    assert args.command == "relay"
    assert args.listen == ("127.0.0.1", 2300)
    assert args.ports == (31000, 31010) and args.media_ip == "127.0.0.2" and args.timeout == 5.0


def _free_range(size: int = 20) -> tuple[int, int]:
    return free_rtp_range(size)


async def _ng(service: RelayService, command: str, **keys: object) -> dict[bytes, BValue]:
    loop = asyncio.get_running_loop()
    cookie = b"u%d" % next(_cookies)
    request = {"command": command, **{k.replace("_", "-"): v for k, v in keys.items()}}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_sendto(sock, cookie + b" " + encode(request), service.address)  # type: ignore[arg-type]
        reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), 2.0)
    got, _, body = reply.partition(b" ")
    assert got == cookie
    value = decode(body)
    assert isinstance(value, dict)
    return value


def _sdp(port: int) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


def _port(reply: dict[bytes, BValue]) -> int:
    sdp = reply[b"sdp"]
    assert isinstance(sdp, bytes)
    assert b"c=IN IP4 127.0.0.1\r\n" in sdp
    match = re.search(rb"m=audio (\d+) ", sdp)
    assert match is not None
    return int(match.group(1))


async def _exchange(alice: socket.socket, bob: socket.socket, to_a: int, to_b: int) -> None:
    loop = asyncio.get_running_loop()
    packet = b"\x80\x00" + bytes(10) + b"voice"
    await loop.sock_sendto(alice, packet, ("127.0.0.1", to_a))
    assert await asyncio.wait_for(loop.sock_recv(bob, 2048), 2.0) == packet
    await loop.sock_sendto(bob, packet[::-1], ("127.0.0.1", to_b))
    assert await asyncio.wait_for(loop.sock_recv(alice, 2048), 2.0) == packet[::-1]


def test_offer_answer_relays_media_and_delete_frees_the_ports() -> None:
    async def scenario() -> None:
        first, last = _free_range()
        settings = RelaySettings(listen_port=0, port_min=first, port_max=last, timeout=60)
        service = RelayService(settings)
        await service.start()
        phones = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        used: list[int] = []
        try:
            for phone in phones:
                phone.bind(("127.0.0.1", 0))
                phone.setblocking(False)
            alice, bob = phones
            assert (await _ng(service, "ping"))[b"result"] == b"pong"
            to_b = _port(await _ng(service, "offer", call_id="c", from_tag="a",
                                   sdp=_sdp(alice.getsockname()[1])))  # fmt: skip
            to_a = _port(await _ng(service, "answer", call_id="c", from_tag="a", to_tag="b",
                                   sdp=_sdp(bob.getsockname()[1])))  # fmt: skip
            assert first <= to_a <= last and first <= to_b <= last and to_a != to_b
            used += [to_a, to_a + 1, to_b, to_b + 1]
            assert service.pool.in_use == 2
            await _exchange(alice, bob, to_a, to_b)
            query = await _ng(service, "query", call_id="c")
            assert query[b"totals"][b"RTP"][b"packets"] == 2  # type: ignore[index,call-overload]
            assert (await _ng(service, "delete", call_id="c", from_tag="a"))[b"result"] == b"ok"
            assert service.pool.in_use == 0
            # a call still open when the service stops is closed with it
            await _ng(service, "offer", call_id="d", from_tag="a", sdp=_sdp(4000))
            assert service.pool.in_use == 2
        finally:
            service.stop()
            for phone in phones:
                phone.close()
        assert service.pool.in_use == 0
        for port in used:  # RTP and RTCP of both legs can be bound again
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", port))

    asyncio.run(scenario())


def test_out_of_ports_is_an_ng_error_not_a_crash() -> None:
    async def scenario() -> None:
        first, _ = _free_range()
        settings = RelaySettings(listen_port=0, port_min=first, port_max=first + 3)  # 2 pairs
        service = RelayService(settings)
        await service.start()
        try:
            ok = await _ng(service, "offer", call_id="c1", from_tag="a", sdp=_sdp(4000))
            assert ok[b"result"] == b"ok"
            refused = await _ng(service, "offer", call_id="c2", from_tag="a", sdp=_sdp(4002))
            assert refused == {b"result": b"error", b"error-reason": b"Ran out of ports"}
            assert service.pool.in_use == 2
            assert (await _ng(service, "list"))[b"calls"] == [b"c1"]
        finally:
            service.stop()

    asyncio.run(scenario())

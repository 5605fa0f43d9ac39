"""RelaySession over real UDP sockets on loopback: forwarding, latching, transcoding, timeout."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator

import pytest

from callway.app.admin_backends import leg_quality
from callway.media.ports import PortPool
from callway.media.relay import RelaySession
from callway.rtp.g711 import ALAW_TO_ULAW
from callway.rtp.packet import build_rtp, parse_rtp_header
from callway.rtp.transcode import g711_transcoder

HOST = "127.0.0.1"
WAIT = 2.0  # bound on every wait for a packet that must arrive
QUIET = 0.3  # how long "nothing arrives" is watched


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


async def receive(sock: socket.socket) -> tuple[bytes, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    data, source = await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), WAIT)
    return data, source


async def nothing_arrives(sock: socket.socket) -> bool:
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), QUIET)
    except TimeoutError:
        return True
    return False


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


def rtp(pt: int, seq: int, payload: bytes = b"\xd5" * 160) -> bytes:
    return build_rtp(pt, seq, seq * 160, 0x1234, payload)


def test_relays_rtp_and_rtcp_both_ways(pool: PortPool) -> None:
    async def scenario() -> None:
        phone_a, phone_b, rtcp_a, rtcp_b = phone(), phone(), phone(), phone()
        with RelaySession(pool, host=HOST) as session:
            session.a.set_remote(address(phone_a), address(rtcp_a))
            session.b.set_remote(address(phone_b), address(rtcp_b))
            session.start()
            relay_a = (HOST, session.a.local_port)
            relay_b = (HOST, session.b.local_port)
            sent = [rtp(0, n, bytes([n]) * 160) for n in range(20)]
            for packet in sent:
                phone_a.sendto(packet, relay_a)
            received = [await receive(phone_b) for _ in sent]
            assert [data for data, _ in received] == sent
            assert {source for _, source in received} == {relay_b}
            assert {parse_rtp_header(data).payload_type for data, _ in received} == {0}

            back = [rtp(8, n) for n in range(5)]
            for packet in back:
                phone_b.sendto(packet, relay_b)
            assert [(await receive(phone_a))[0] for _ in back] == back

            report = b"\x80\xc9\x00\x01\xca\xfe\xba\xbe"
            rtcp_a.sendto(report, (HOST, session.a.local_rtcp_port))
            assert await receive(rtcp_b) == (report, (HOST, session.b.local_rtcp_port))
            rtcp_b.sendto(report, (HOST, session.b.local_rtcp_port))
            assert (await receive(rtcp_a))[0] == report

            a, b = session.a.stats(), session.b.stats()
            assert (a.packets_in, a.bytes_in, a.packets_out) == (20, 20 * 172, 5)
            assert (b.packets_in, b.packets_out, b.bytes_out) == (5, 20, 20 * 172)
            assert (a.rtcp_packets_in, a.rtcp_packets_out) == (1, 1)
            assert a.latched and b.latched and a.dropped == 0
            assert a.last_packet_at is not None
        for sock in (phone_a, phone_b, rtcp_a, rtcp_b):
            sock.close()

    run(scenario)


def test_latches_to_nated_source_and_refuses_hijack(pool: PortPool) -> None:
    async def scenario() -> None:
        nat_a, phone_b, hijacker = phone(), phone(), phone()
        private_a = phone()  # what A signalled in SDP; the NAT rewrites its port
        with RelaySession(pool, host=HOST) as session:
            session.a.set_remote(address(private_a))
            session.b.set_remote(address(phone_b))
            session.start()
            relay_a = (HOST, session.a.local_port)
            relay_b = (HOST, session.b.local_port)

            nat_a.sendto(rtp(0, 1), relay_a)
            assert (await receive(phone_b))[0] == rtp(0, 1)
            assert session.a.remote_rtp == address(nat_a)
            assert session.a.stats().remote_rtcp == (HOST, address(nat_a)[1] + 1)

            phone_b.sendto(rtp(0, 2), relay_b)
            assert (await receive(nat_a))[0] == rtp(0, 2)  # answered to the NAT mapping
            assert await nothing_arrives(private_a)

            hijacker.sendto(rtp(0, 666), relay_a)
            assert await nothing_arrives(phone_b)
            assert session.a.stats().dropped == 1
            phone_b.sendto(rtp(0, 3), relay_b)
            assert (await receive(nat_a))[0] == rtp(0, 3)
            assert await nothing_arrives(hijacker)

            session.a.set_remote(address(hijacker))  # a re-INVITE moves A
            phone_b.sendto(rtp(0, 4), relay_b)
            assert (await receive(hijacker))[0] == rtp(0, 4)
        for sock in (nat_a, phone_b, hijacker, private_a):
            sock.close()

    run(scenario)


def test_strict_after_window_then_relatch(pool: PortPool) -> None:
    async def scenario() -> None:
        moved_a, phone_b, signalled_a = phone(), phone(), phone()
        session = RelaySession(pool, host=HOST, latch_window=0.2, latch_timeout=60.0)
        try:
            session.a.set_remote(address(signalled_a))
            session.b.set_remote(address(phone_b))
            session.start()
            relay_a = (HOST, session.a.local_port)
            await asyncio.sleep(0.25)
            moved_a.sendto(rtp(0, 1), relay_a)
            assert await nothing_arrives(phone_b)  # not signalled, learning window over
            session.a.relatch()  # e.g. after a re-INVITE: learn again
            moved_a.sendto(rtp(0, 2), relay_a)
            assert (await receive(phone_b))[0] == rtp(0, 2)
        finally:
            session.close()
        for sock in (moved_a, phone_b, signalled_a):
            sock.close()

    run(scenario)


def test_transcodes_alaw_to_ulaw(pool: PortPool) -> None:
    async def scenario() -> None:
        phone_a, phone_b = phone(), phone()
        with RelaySession(pool, host=HOST, symmetric=True) as session:
            session.set_transcoding(a_to_b=g711_transcoder("alaw", "ulaw", pt_map={101: 96}))
            session.start()
            session.b.set_remote(address(phone_b))
            payload = bytes(range(160))
            phone_a.sendto(rtp(8, 1, payload), (HOST, session.a.local_port))
            data, _ = await receive(phone_b)
            header = parse_rtp_header(data)
            assert header.payload_type == 0
            assert data[12:] == payload.translate(ALAW_TO_ULAW)
            assert data[2:12] == rtp(8, 1)[2:12]

            event = build_rtp(101, 2, 160, 0x1234, b"\x05\x8a\x03\x20")
            phone_a.sendto(event, (HOST, session.a.local_port))
            data, _ = await receive(phone_b)
            assert data[1] == 96 and data[2:] == event[2:]

            session.set_transcoding()  # back to plain relaying
            phone_a.sendto(rtp(8, 3, payload), (HOST, session.a.local_port))
            assert (await receive(phone_b))[0] == rtp(8, 3, payload)
        phone_a.close()
        phone_b.close()

    run(scenario)


def test_rtp_timeout_fires_once_for_the_silent_leg(pool: PortPool) -> None:
    async def scenario() -> None:
        timeouts: list[str] = []
        phone_a, phone_b = phone(), phone()
        session = RelaySession(
            pool, host=HOST, rtp_timeout=0.2, on_timeout=lambda s, leg: timeouts.append(leg)
        )
        try:
            session.a.set_remote(address(phone_a))
            session.b.set_remote(address(phone_b))
            session.start()
            for n in range(14):  # A talks every 50 ms for 0.7 s; B stays silent
                phone_a.sendto(rtp(0, n), (HOST, session.a.local_port))
                await asyncio.sleep(0.05)
            assert timeouts == ["b"]
            await asyncio.sleep(0.4)
            assert timeouts == ["b", "a"]
        finally:
            session.close()
        phone_a.close()
        phone_b.close()

    run(scenario)


def test_set_rtp_timeout_counts_silence_from_the_change(pool: PortPool) -> None:
    """On hold (0: no timeout) the silence does not count, and after it counts from the resume."""

    async def scenario() -> None:
        timeouts: list[str] = []
        session = RelaySession(
            pool, host=HOST, rtp_timeout=0.3, on_timeout=lambda s, leg: timeouts.append(leg)
        )
        try:
            session.start()
            session.set_rtp_timeout(0)  # held: rtp_timeout_hold=0
            await asyncio.sleep(0.6)
            assert timeouts == []
            session.set_rtp_timeout(0.3)  # resumed: 0.6 s of silence already, none counted
            await asyncio.sleep(0.15)
            assert timeouts == []
            await asyncio.sleep(0.35)
            assert sorted(timeouts) == ["a", "b"]
        finally:
            session.close()

    run(scenario)


def test_close_releases_ports_and_stops_relaying(pool: PortPool) -> None:
    async def scenario() -> None:
        phone_a, phone_b = phone(), phone()
        pool.keep_idle = 0  # unbind on close (the PBX's pool keeps pairs idle for reuse)
        session = RelaySession(pool, host=HOST, symmetric=True)
        session.b.set_remote(address(phone_b))
        session.start()
        ports = [session.a.local_port, session.b.local_port]
        assert pool.in_use == 2
        session.close()
        session.close()
        assert session.closed and pool.in_use == 0
        for port in ports:  # both ports of each pair can be bound again
            for offset in (0, 1):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind((HOST, port + offset))
        with pytest.raises(RuntimeError, match="closed"):
            session.start()
        phone_a.close()
        phone_b.close()

    run(scenario)


def test_closed_pair_is_parked_then_serves_the_next_call_on_the_loop(pool: PortPool) -> None:
    """A pair kept idle stays read (stragglers discarded); the next session takes it over."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        phone_a, phone_b = phone(), phone()
        pool.quarantine = 0.0
        first = RelaySession(pool, host=HOST, symmetric=True)
        first.b.set_remote(address(phone_b))
        first.start()
        relay_a = (HOST, first.a.local_port)
        first.close()
        assert pool.idle == 2 and pool.in_use == 0
        phone_a.sendto(rtp(0, 1), relay_a)  # a straggler of the ended call
        await asyncio.sleep(0.05)  # the parked reader discards it
        with RelaySession(pool, host=HOST, symmetric=True) as second:
            assert {second.a.local_port, second.b.local_port} == {relay_a[1], first.b.local_port}
            assert second.a.pair.parked is loop  # handed over without touching the loop
            second.b.set_remote(address(phone_b))
            second.a.set_remote(address(phone_a))
            second.start()
            assert second.a.pair.parked is None and second.b.pair.parked is None
            assert await nothing_arrives(phone_b)  # the straggler was not relayed
            source = second.a if second.a.local_port == relay_a[1] else second.b
            target = phone_b if source is second.a else phone_a
            phone_a.sendto(rtp(0, 2), (HOST, source.local_port))
            data, _ = await receive(target)
            assert parse_rtp_header(data).sequence == 2
        pool.close_idle()  # removes the parked readers before closing the sockets
        assert pool.idle == 0
        phone_a.close()
        phone_b.close()

    run(scenario)


def test_expired_parked_pair_leaves_the_loop_first(pool: PortPool) -> None:
    """An idle pair unbound by expire_idle has its discarding readers removed first."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        session = RelaySession(pool, host=HOST)
        fds = {e.sock.fileno() for leg in (session.a, session.b) for e in (leg.rtp, leg.rtcp)}
        session.start()
        session.close()
        assert pool.idle == 2
        for fd in fds:  # parked: still read, and discarded
            assert loop.remove_reader(fd)
            loop.add_reader(fd, lambda: None)
        pool.idle_timeout = 0.0
        assert pool.expire_idle() == 2
        for fd in fds:  # no reader left on a closed socket
            assert not loop.remove_reader(fd)
        await asyncio.sleep(0.05)  # the loop still runs

    run(scenario)


def test_second_allocation_failure_releases_the_first() -> None:
    start = random.randrange(40000, 58000, 2)
    tiny = PortPool(HOST, start, start + 1)
    with pytest.raises(RuntimeError, match="no free RTP port pair"):
        RelaySession(tiny, host=HOST)
    assert tiny.in_use == 0


def receiver_report(lost: int, fraction: int, highest: int, jitter: int) -> bytes:
    """An RTCP RR (RFC 3550 §6.4.2) with one report block, as a phone sends it."""
    header = struct.pack("!BBHI", 0x81, 201, 7, 0x11111111)
    block = struct.pack("!IIIIII", 0x22222222, (fraction << 24) | (lost & 0xFFFFFF), highest,
                        jitter, 0, 0)  # fmt: skip
    return header + block


def test_rtcp_reports_give_loss_and_jitter(pool: PortPool) -> None:
    async def scenario() -> None:
        phone_a, phone_b, rtcp_a, rtcp_b = phone(), phone(), phone(), phone()
        with RelaySession(pool, host=HOST) as session:
            session.a.set_remote(address(phone_a), address(rtcp_a))
            session.b.set_remote(address(phone_b), address(rtcp_b))
            session.start()
            before = session.a.stats()
            assert (before.lost, before.expected, before.jitter_ms) == (None, None, None)
            assert leg_quality(before).mos is None
            for n in range(40):  # B's stream, relayed to A
                phone_b.sendto(rtp(0, n), (HOST, session.b.local_port))
            for _ in range(40):
                await receive(phone_a)
            # A reports: 4 of 40 lost, 25 % over the last interval, jitter 80 units (10 ms)
            report = receiver_report(4, 64, 39, 80)
            rtcp_a.sendto(report, (HOST, session.a.local_rtcp_port))
            assert await receive(rtcp_b) == (report, (HOST, session.b.local_rtcp_port))
            a = session.a.stats()
            assert (a.lost, a.expected, a.jitter_ms, a.fraction_lost) == (4, 40, 10.0, 0.25)
            assert session.b.stats().lost is None  # B reported nothing
            quality = leg_quality(a)
            assert quality.loss == pytest.approx(0.1)
            assert quality.jitter_ms == 10.0
            assert quality.mos is not None and 1.0 < quality.mos < 4.5

            # an SR's report block counts too; garbage is relayed and ignored
            sender = struct.pack("!BBHIIIIII", 0x81, 200, 12, 0x11111111, 0, 0, 0, 40, 6400)
            block = struct.pack("!IIIIII", 0x22222222, 0, 39, 16, 0, 0)
            rtcp_a.sendto(sender + block, (HOST, session.a.local_rtcp_port))
            await receive(rtcp_b)
            rtcp_a.sendto(b"\x00junk", (HOST, session.a.local_rtcp_port))
            assert (await receive(rtcp_b))[0] == b"\x00junk"
            a = session.a.stats()
            assert (a.lost, a.expected, a.jitter_ms, a.fraction_lost) == (0, 40, 2.0, 0.0)
        for sock in (phone_a, phone_b, rtcp_a, rtcp_b):
            sock.close()

    run(scenario)


def test_stun_on_the_media_port_is_answered_not_relayed(pool: PortPool) -> None:
    """RFC 7983: a STUN Binding to a relay port gets our view of its source."""
    from callway.stun.message import MessageClass, Method, StunMessage, decode, encode

    async def scenario() -> tuple[tuple[str, int], tuple[str, int], int]:
        loop = asyncio.get_running_loop()
        session = RelaySession(pool, symmetric=True)
        session.start(loop)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((HOST, 0))
        client.setblocking(False)
        try:
            request = StunMessage(Method.BINDING, MessageClass.REQUEST, b"\x01" * 12)
            client.sendto(encode(request), (HOST, session.a.local_port))
            data = await asyncio.wait_for(loop.sock_recv(client, 2048), 2.0)
            mapped = decode(data).address(0x0020)
            assert mapped is not None
            return (mapped.host, mapped.port), client.getsockname(), session.a.stats().packets_in
        finally:
            client.close()
            session.close()

    mapped, own, relayed = asyncio.run(scenario())
    assert mapped == own
    assert relayed == 0

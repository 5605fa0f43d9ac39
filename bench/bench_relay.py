"""Benchmark the RTP relay against a minimal asyncio DatagramProtocol relay.

N calls, each one RelaySession (two legs) in this process.  A sender process
sends G.711-sized RTP (12-byte header + 160 bytes) at ``--pps`` per leg in
both directions of every call, from the phone sockets; a receiver process
reads the same sockets (inherited by fork) and measures loss, one-way
transit and the delay variation between consecutive packets of a stream
(|D(i-1,i)| of RFC 3550 §6.4.1: what the relay adds to the sender's
spacing).  The relay's CPU comes from ``resource.getrusage`` of this process
over the traffic window.  The same load then goes through the reference
relay (one DatagramProtocol per leg that forwards each datagram with
``transport.sendto``) on the same event loop, and the ratio is printed.

    .venv/bin/python bench/bench_relay.py [--calls 100] [--pps 50] [--duration 10]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import multiprocessing
import random
import resource
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

from callway.media import relay as relay_module
from callway.media.ports import PortPool
from callway.media.relay import RelaySession
from callway.rtp.transcode import g711_transcoder

HOST = "127.0.0.1"
HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
FILLER = b"\xd5" * 160
STARTUP = 0.5  # seconds between forking the phones and the first packet
DRAIN = 0.5  # seconds the receiver keeps reading after the last packet


def _now_us() -> int:
    return time.monotonic_ns() // 1000


def sender(
    conn: Connection,
    socks: list[socket.socket],
    targets: list[tuple[str, int]],
    pps: int,
    duration: float,
    start: float,
    pt: int,
) -> None:
    """Send ``pps`` packets/s per stream, streams staggered evenly over the period."""
    period, count = 1.0 / pps, len(socks)
    seqs = [0] * count
    sent, tick = 0, 0
    while True:
        base = start + tick * period
        if base >= start + duration:
            break
        for stream in range(count):
            due = base + stream * period / count
            delay = due - time.monotonic()
            if delay > 0.0002:
                time.sleep(delay)
            # The RTP timestamp carries the send time in microseconds (mod 2**32).
            header = HEADER.pack(0x80, pt, seqs[stream], _now_us() & 0xFFFFFFFF, stream)
            seqs[stream] = (seqs[stream] + 1) & 0xFFFF
            try:
                socks[stream].sendto(header + FILLER, targets[stream])
                sent += 1
            except OSError:
                pass
        tick += 1
    conn.send(sent)


def receiver(conn: Connection, socks: list[socket.socket], deadline: float) -> None:
    """Read every phone socket until ``deadline``; report count, transit, jitter."""
    selector = selectors.DefaultSelector()
    for index, sock in enumerate(socks):
        selector.register(sock, selectors.EVENT_READ, index)
    last_transit: list[int | None] = [None] * len(socks)
    transits, jitters = array.array("q"), array.array("q")
    received = 0
    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.05):
            readable = cast(socket.socket, key.fileobj)
            while True:
                try:
                    data = readable.recv(2048)
                except BlockingIOError:
                    break
                arrival = _now_us()
                _, _, _, sent_us, _ = HEADER.unpack_from(data)
                transit = (arrival - sent_us) & 0xFFFFFFFF
                previous = last_transit[key.data]
                if previous is not None:
                    jitters.append(abs(transit - previous))
                last_transit[key.data] = transit
                transits.append(transit)
                received += 1
    conn.send((received, _percentiles(transits), _percentiles(jitters)))


def _percentiles(values: array.array[int]) -> tuple[int, int]:
    if not values:
        return 0, 0
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]


class _Forward(asyncio.DatagramProtocol):
    """The reference: forward every datagram to the peer leg's phone."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: _Forward | None = None
        self.dest: tuple[str, int] = (HOST, 0)
        self.count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        peer = self.peer
        assert peer is not None and peer.transport is not None
        peer.transport.sendto(data, peer.dest)
        self.count += 1


@dataclass
class Relay:
    """One relay under test: per call (leg A port, leg B port), a counter, a closer."""

    ports: list[tuple[int, int]]
    relayed: Callable[[], int]
    close: Callable[[], None]


async def callway_relay(
    phones: list[tuple[socket.socket, socket.socket]], transcode: bool
) -> Relay:
    start = random.randrange(30000, 50000, 2)
    pool = PortPool(HOST, start, start + 4 * len(phones) + 200)
    sessions = []
    for phone_a, phone_b in phones:
        session = RelaySession(pool, host=HOST)
        session.a.set_remote(phone_a.getsockname())
        session.b.set_remote(phone_b.getsockname())
        if transcode:
            session.set_transcoding(a_to_b=g711_transcoder("alaw", "ulaw"))
        session.start()
        sessions.append(session)

    def relayed() -> int:
        return sum(s.a.stats().packets_out + s.b.stats().packets_out for s in sessions)

    def close() -> None:
        for session in sessions:
            session.close()

    return Relay([(s.a.local_port, s.b.local_port) for s in sessions], relayed, close)


async def reference_relay(
    phones: list[tuple[socket.socket, socket.socket]], transcode: bool
) -> Relay:
    loop = asyncio.get_running_loop()
    legs: list[tuple[_Forward, _Forward]] = []
    for phone_a, phone_b in phones:
        pair = []
        for phone in (phone_a, phone_b):
            _, protocol = await loop.create_datagram_endpoint(_Forward, local_addr=(HOST, 0))
            protocol.dest = phone.getsockname()
            pair.append(protocol)
        pair[0].peer, pair[1].peer = pair[1], pair[0]
        legs.append((pair[0], pair[1]))

    def port(protocol: _Forward) -> int:
        assert protocol.transport is not None
        return int(protocol.transport.get_extra_info("sockname")[1])

    def close() -> None:
        for pair in legs:
            for protocol in pair:
                assert protocol.transport is not None
                protocol.transport.close()

    return Relay(
        [(port(a), port(b)) for a, b in legs],
        lambda: sum(a.count + b.count for a, b in legs),
        close,
    )


def _udp_receive_errors() -> int:
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one relay under the load; return its figures."""
    phones = [(_phone(), _phone()) for _ in range(args.calls)]
    build = callway_relay if kind == "callway" else reference_relay
    relay = await build(phones, args.transcode and kind == "callway")
    socks = [a for a, _ in phones] + [b for _, b in phones]
    targets = [(HOST, a) for a, _ in relay.ports] + [(HOST, b) for _, b in relay.ports]
    start = time.monotonic() + STARTUP
    end = start + args.duration
    context = multiprocessing.get_context("fork")
    recv_parent, recv_child = context.Pipe(duplex=False)
    send_parent, send_child = context.Pipe(duplex=False)
    pt = 8 if args.transcode else 0
    processes = [
        context.Process(target=receiver, args=(recv_child, socks, end + DRAIN)),
        context.Process(
            target=sender, args=(send_child, socks, targets, args.pps, args.duration, start, pt)
        ),
    ]
    for process in processes:
        process.start()
    errors_before = _udp_receive_errors()
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    cpu_before, relayed_before = _cpu(), relay.relayed()
    await asyncio.sleep(max(0.0, end + DRAIN - time.monotonic()))
    cpu = _cpu() - cpu_before
    relayed = relay.relayed() - relayed_before
    sent = send_parent.recv()
    received, transit, jitter = recv_parent.recv()
    for process in processes:
        process.join(timeout=10)
    relay.close()
    for sock in socks:
        sock.close()
    return {
        "relay": kind,
        "relayed": relayed,
        "rate": relayed / args.duration,
        "cpu": cpu,
        "cpu_per_k": 1000 * cpu / max(relayed, 1),
        "loss": 1 - received / max(sent, 1),
        "transit": transit,
        "jitter": jitter,
        "kernel_drops": _udp_receive_errors() - errors_before,
    }


def _phone() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    return sock


def _new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _report(loop_name: str, rows: list[dict[str, Any]]) -> None:
    print(f"\nloop: {loop_name}")
    print(
        f"{'relay':<10} {'pkts/s':>8} {'CPU s/1000':>11} {'us/pkt':>7} {'loss':>7} "
        f"{'transit p50/p99 us':>19} {'|D| p99 us':>11} {'kernel drops':>13}"
    )
    for row in rows:
        transit = f"{row['transit'][0]}/{row['transit'][1]}"
        print(
            f"{row['relay']:<10} {row['rate']:>8.0f} {row['cpu_per_k']:>11.4f} "
            f"{row['cpu_per_k'] * 1000:>7.1f} {row['loss']:>7.2%} {transit:>19} "
            f"{row['jitter'][1]:>11} {row['kernel_drops']:>13}"
        )
    ours, reference = rows
    print(f"CPU per packet, callway / reference: {ours['cpu_per_k'] / reference['cpu_per_k']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--pps", type=int, default=50, help="packets/s per leg and direction")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of traffic per relay")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop", "both"], default="auto")
    parser.add_argument("--transcode", action="store_true", help="A->B alaw->ulaw in callway")
    parser.add_argument("--batch", type=int, default=relay_module._BATCH, help="reads per wakeup")
    args = parser.parse_args()
    if not 1 <= args.calls <= 2000 or not 1 <= args.pps <= 1000 or not 0 < args.duration <= 120:
        parser.error("keep --calls <= 2000, --pps <= 1000, --duration <= 120")
    relay_module._BATCH = args.batch
    try:
        import uvloop  # noqa: F401

        have_uvloop = True
    except ImportError:
        have_uvloop = False
    loops = {"auto": ["uvloop" if have_uvloop else "asyncio"], "both": ["uvloop", "asyncio"]}
    print(
        f"{args.calls} calls x 2 directions x {args.pps} pkt/s, 172-byte RTP, "
        f"{args.duration:.0f} s per relay, batch {args.batch}"
        f"{', alaw->ulaw transcoding' if args.transcode else ''}"
    )
    for loop_name in loops.get(args.loop, [args.loop]):
        rows = []
        for kind in ("callway", "reference"):
            loop = _new_loop(loop_name)
            try:
                rows.append(loop.run_until_complete(measure(kind, args)))
            finally:
                loop.close()
        _report(loop_name, rows)


if __name__ == "__main__":
    main()

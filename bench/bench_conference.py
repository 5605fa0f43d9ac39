"""Benchmark conference mixing: CPU per mixed frame and participants per core.

Two measurements per room size N:

* **mixer** (sans-I/O): ``ConferenceMixer`` alone; every frame pushes one
  G.711 payload per participant and mixes.  CPU per frame from
  ``time.process_time``; participants per core = N x 20 ms / CPU per frame.
* **room** (asyncio shell): one ``ConferenceRoom`` with N members on real
  UDP loopback sockets; a separate process plays the N phones (each sends a
  G.711 tone every 20 ms and counts what comes back).  The room process's CPU
  comes from ``resource.getrusage`` over the traffic window, so it includes
  receiving, latching, parsing, mixing and sending.  Also printed: ticks that
  had to skip frames (the loop was blocked) and the largest gap between two
  mixes, which must stay near 20 ms for "no late frame".

A frame is *late* when the room had to skip it (the loop was blocked a whole
period) or two mixes were more than 1.5 periods apart.  The verdict line gives
participants per core measured on the largest room that had no late frame,
against the target (200 participants per core).

    .venv/bin/python bench/bench_conference.py [--sizes 50 200] [--duration 5] [--target 200]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import socket
import struct
import time
from multiprocessing.connection import Connection

import numpy as np

from callway.media.conference import ConferenceRoom
from callway.media.ports import PortPool
from callway.rtp.g711 import ulaw_encode
from callway.rtp.mixer import ConferenceMixer

HOST = "127.0.0.1"
FRAME = 160
PERIOD = 0.02
HEADER = struct.Struct("!BBHII")
WARMUP = 0.5  # seconds of traffic before the CPU window opens
LATE_GAP = 1.5 * PERIOD  # two mixes further apart than this: a late frame
TARGET = 200  # participants per core


def tone_frames(frequency: float, count: int) -> list[bytes]:
    """``count`` consecutive u-law frames of a sine."""
    t = np.arange(count * FRAME) / 8000
    pcm = np.rint(6000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16).tobytes()
    payload = ulaw_encode(pcm)
    return [payload[i * FRAME : (i + 1) * FRAME] for i in range(count)]


def bench_mixer(size: int, frames: int = 500) -> float:
    """CPU seconds per frame (push N + mix) for a room of ``size``."""
    mixer = ConferenceMixer()
    payloads = [tone_frames(200.0 + 37 * n, 50) for n in range(size)]
    for n in range(size):
        mixer.add(f"p{n}", "ulaw" if n % 2 else "alaw")
    start = time.process_time()
    for frame in range(frames):
        now = frame * PERIOD
        for n in range(size):
            mixer.push(f"p{n}", payloads[n][frame % 50], frame, now)
        mixer.mix(now)
    return (time.process_time() - start) / frames


def phones(ports: list[int], duration: float, conn: Connection) -> None:
    """The N phones (child process): send a tone each 20 ms, count what comes back."""
    socks = []
    for _ in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        socks.append(sock)
    frames = [tone_frames(200.0 + 37 * n, 50) for n in range(len(ports))]
    received = 0
    start = time.monotonic()
    for index in range(round(duration / PERIOD)):
        for n, (sock, port) in enumerate(zip(socks, ports, strict=True)):
            packet = HEADER.pack(0x80, 0, index & 0xFFFF, index * FRAME, n) + frames[n][index % 50]
            sock.sendto(packet, (HOST, port))
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                received += 1
        delay = start + (index + 1) * PERIOD - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    conn.send(received)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bench_room(size: int, duration: float) -> dict[str, float]:
    """Run one room of ``size`` members with phones in another process."""
    pool = PortPool(HOST, 30000, 30000 + 4 * size + 100)
    room = ConferenceRoom("bench", pool, tones=False)
    ports = [room.join(f"p{n}", "ulaw", None) for n in range(size)]
    mixes: list[float] = []
    mix = room.mixer.mix

    def timed_mix(now: float) -> dict[str, bytes]:
        mixes.append(now)
        return mix(now)

    room.mixer.mix = timed_mix  # type: ignore[method-assign]
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=phones, args=(ports, duration + WARMUP, child)
    )
    process.start()
    await asyncio.sleep(0.3 + WARMUP)  # the child's start-up, then warm-up traffic
    late_before, mixes_before = room.late_ticks, len(mixes)
    cpu_start, wall_start = cpu_seconds(), time.monotonic()
    await asyncio.sleep(duration - 0.3)
    cpu, wall = cpu_seconds() - cpu_start, time.monotonic() - wall_start
    window = mixes[mixes_before:]
    late = room.late_ticks - late_before
    while not parent.poll():
        await asyncio.sleep(0.05)
    received = parent.recv()
    process.join(5)
    packets_in = sum(room.member(f"p{n}").packets_in for n in range(size))
    room.close()
    gaps = np.diff(window) if len(window) > 1 else np.zeros(1)
    return {
        "cpu_share": cpu / wall,
        "cpu_per_frame": cpu / max(len(window), 1),
        "frames": len(window),
        "late": late,
        "max_gap": float(gaps.max()),
        "p99_gap": float(np.percentile(gaps, 99)),
        "received": received,
        "sent": size * round((duration + WARMUP) / PERIOD),
        "packets_in": packets_in,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--target", type=int, default=TARGET, help="participants per core")
    args = parser.parse_args()
    print("mixer only (sans-I/O, push N + mix per 20 ms frame)")
    for size in sorted({*args.sizes, 100, 200}):
        mixer_cost = bench_mixer(size)
        print(
            f"  N={size:4d}: {mixer_cost * 1e3:7.3f} ms CPU/frame "
            f"({mixer_cost / PERIOD:6.1%} of a core) -> "
            f"{size * PERIOD / mixer_cost:8.0f} participants/core"
        )
    print(f"room over UDP loopback ({args.duration:.0f} s, phones in another process)")
    per_frame: dict[int, float] = {}
    on_time: dict[int, float] = {}  # room size -> participants/core, rooms with no late frame
    for size in args.sizes:
        r = asyncio.run(bench_room(size, args.duration))
        per_frame[size] = r["cpu_per_frame"]
        late = r["late"] > 0 or r["max_gap"] > LATE_GAP
        if not late:
            on_time[size] = size / r["cpu_share"]
        print(
            f"  N={size:4d}: {r['cpu_per_frame'] * 1e3:7.3f} ms CPU/frame "
            f"({r['cpu_share']:6.1%} of a core) -> "
            f"{size / r['cpu_share']:8.0f} participants/core; "
            f"frames {r['frames']:.0f}, skipped {r['late']:.0f}, "
            f"mix gap p99 {r['p99_gap'] * 1e3:.1f} ms max {r['max_gap'] * 1e3:.1f} ms; "
            f"phones sent {r['sent']:.0f}, room got {r['packets_in']:.0f}, "
            f"phones got {r['received']:.0f}; {'LATE FRAMES' if late else 'no late frame'}"
        )
    _verdict(on_time, args.target)
    if len(per_frame) > 1:  # the loop's fixed cost per tick cancels out
        low, high = min(per_frame), max(per_frame)
        slope = (per_frame[high] - per_frame[low]) / (high - low)
        if slope > 0:
            print(
                f"  marginal cost N={low}..{high}: {slope * 1e6:.1f} us CPU per participant "
                f"per frame -> {PERIOD / slope:.0f} participants/core"
            )


def _verdict(on_time: dict[int, float], target: int) -> None:
    """Participants per core from the largest room that mixed with no late frame."""
    if not on_time:
        print(f"verdict: every room had late frames (target {target} participants/core): FAIL")
        return
    size = max(on_time)
    capacity = on_time[size]
    status = "OK" if capacity >= target else "BELOW TARGET"
    print(
        f"verdict: N={size} mixed with no late frame -> {capacity:.0f} participants/core "
        f"(target {target}): {status}"
    )


if __name__ == "__main__":
    main()

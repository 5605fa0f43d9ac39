"""Benchmark the cost of SRTP in the relay: SRTP<->RTP next to plain RTP, same run.

N calls, each one RelaySession in this process, measured three ways in turn
under the same load (the sender, receiver and figures of ``bench_relay.py``):

- ``plain``: RTP on both legs (what ``bench_relay.py`` measures);
- ``srtp-rtp``: leg A is SRTP (AES_CM_128_HMAC_SHA1_80, RFC 3711 with SDES
  keys), leg B plain: A->B packets are unprotected, B->A protected, so every
  relayed packet costs one libsrtp operation (the issue's SRTP<->RTP case);
- ``srtp-srtp``: both legs SRTP with different keys (unprotect and protect
  per packet), for reference.

The phones on leg A send SRTP with their own key (protected in the sender
process, not timed) and receive what the relay protected.  A sample of what
they receive is checked to authenticate with callway's key, so the figures
are for a relay that really does the work.  CPU per packet comes from
``getrusage`` of this process over the traffic window; the target is SRTP
at most 1.5x plain per packet.  Rounds alternate the modes to spread the
machine's noise; the medians are reported.

Reading the figures: the last two lines are libsrtp's cost through
callway's in-place step (what the relay runs per RTP packet of an SRTP-only
direction; the copy in stands for the kernel's ``recvfrom_into``) with warm
caches, about 0.8 us per packet, and the floor under it, a minimal loop doing
only the copy in and the libsrtp call (about 0.75 us).  In the relay, at RTP
rates, each wakeup handles one packet after the loop idled (the reader runs
50,100 times for 50,000 packets, so reading several datagrams per wakeup
has nothing to gain), and on a shared 2-core VM everything a packet touches
is cold then.  Where the difference goes, timed with the thread's CPU clock
around the relay's reader (a packet queued, 100 us idle, the reader called;
the variants taking turns packet by packet, 50 calls each): plain 8.5-11.8
us per packet; the SRTP path with libsrtp's call replaced by a no-op, 0.3 us
less than plain (no bytes object), so callway's own SRTP work costs nothing
over plain; libsrtp's call itself about 4.8 us per protect and 3.5 us per
unprotect (0.25-0.8 us warm).  About 1.4 us of it is the session's own state
(every call on one shared session: 1.4 us less); the rest is libsrtp 2.7's
and OpenSSL 3.5's code path (EVP cipher init per IV, EVP_MAC HMAC with its
context copies), cold after each idle gap.  Tried without gain: the libsrtp
call inlined in the relay (no step closure), the sessions allocated in a
thread of their own (compact, another malloc arena), the phones on one key
(the sender's cache footprint as in plain), the relay and the phones pinned
to different cores (every mode slower: plain 14-19 us), the three modes
interleaved in 0.5 s slices of one run (steadier rounds, ratio 1.53-1.56 in
three runs).  With 300 calls (30,000 pkt/s) the per-packet figures stay
(plain 10.4 us, srtp-rtp 18.0), so the cold cost is not an artefact of a
lightly loaded relay.  The ratio therefore sits on the line and moves with
the machine's load: over ten runs of ``--duration 5 --rounds 3`` (same code,
a busy shared machine) plain 8.7-11.5 us, srtp-rtp 13.6-16.3 us, srtp-rtp /
plain 1.29-1.65, median 1.55.

    .venv/bin/python bench/bench_srtp.py [--calls 100] [--pps 50] [--duration 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import multiprocessing
import random
import socket
import statistics
import time
import timeit
from multiprocessing.connection import Connection
from typing import Any

import pylibsrtp
from bench_relay import (
    DRAIN,
    FILLER,
    HEADER,
    HOST,
    STARTUP,
    _cpu,
    _new_loop,
    _now_us,
    _phone,
    _udp_receive_errors,
    receiver,
)

from callway.media.ports import PortPool
from callway.media.relay import RelaySession
from callway.media.srtp import LegSrtp, scratch_view
from callway.sdp.crypto import CryptoAttribute

SUITE = "AES_CM_128_HMAC_SHA1_80"
MODES = ("plain", "srtp-rtp", "srtp-srtp")


def _session(key: bytes, outbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=kind))


def sender(
    conn: Connection,
    socks: list[socket.socket],
    targets: list[tuple[str, int]],
    keys: list[bytes | None],
    pps: int,
    duration: float,
    start: float,
) -> None:
    """Like bench_relay's sender; streams with a key send SRTP (the phone's key).

    Streams without a key protect a copy too and send the plain packet, so
    the sender's pacing (and the relay's wakeups) are the same in every mode.
    """
    period, count = 1.0 / pps, len(socks)
    dummy = _session(bytes(30), True).protect
    protect = [_session(key, True).protect if key else None for key in keys]
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
            packet = HEADER.pack(0x80, 0, seqs[stream], _now_us() & 0xFFFFFFFF, stream) + FILLER
            seqs[stream] = (seqs[stream] + 1) & 0xFFFF
            cipher = protect[stream]
            if cipher is not None:
                packet = cipher(packet)
            else:
                dummy(packet)
            try:
                socks[stream].sendto(packet, targets[stream])
                sent += 1
            except OSError:
                pass
        tick += 1
    conn.send(sent)


def _keyed_relay(
    pool: PortPool, phone_a: socket.socket, phone_b: socket.socket, mode: str
) -> tuple[RelaySession, list[bytes | None], list[bytes | None]]:
    """A relay for one call; per phone the key it sends with and the key it receives with."""
    session = RelaySession(pool, host=HOST)
    session.a.set_remote(phone_a.getsockname())
    session.b.set_remote(phone_b.getsockname())
    send_keys: list[bytes | None] = [None, None]
    recv_keys: list[bytes | None] = [None, None]
    for index, (name, on) in enumerate((("a", mode != "plain"), ("b", mode == "srtp-srtp"))):
        if on:
            phone_key = CryptoAttribute.generate(1, SUITE)
            our_key = CryptoAttribute.generate(1, SUITE)
            session.set_srtp(name, LegSrtp(our_key, phone_key))
            send_keys[index], recv_keys[index] = phone_key.key_salt, our_key.key_salt
    session.start()
    return session, send_keys, recv_keys


async def measure(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    phones = [(_phone(), _phone()) for _ in range(args.calls)]
    start_port = random.randrange(30000, 50000, 2)
    # room to skip ports other processes hold (a shared machine's tests, load generators)
    pool = PortPool(HOST, start_port, start_port + 4 * args.calls + 4000)
    relays = [_keyed_relay(pool, a, b, mode) for a, b in phones]
    sessions = [r[0] for r in relays]
    socks = [a for a, _ in phones] + [b for _, b in phones]
    targets = [(HOST, s.a.local_port) for s in sessions] + [
        (HOST, s.b.local_port) for s in sessions
    ]
    send_keys = [r[1][0] for r in relays] + [r[1][1] for r in relays]
    recv_keys = [r[2][0] for r in relays] + [r[2][1] for r in relays]
    start = time.monotonic() + STARTUP
    end = start + args.duration
    context = multiprocessing.get_context("fork")
    recv_parent, recv_child = context.Pipe(duplex=False)
    send_parent, send_child = context.Pipe(duplex=False)
    processes = [
        context.Process(target=receiver, args=(recv_child, socks, end + DRAIN)),
        context.Process(
            target=sender,
            args=(send_child, socks, targets, send_keys, args.pps, args.duration, start),
        ),
    ]
    for process in processes:
        process.start()
    errors_before = _udp_receive_errors()

    def relayed() -> int:
        return sum(s.a.stats().packets_out + s.b.stats().packets_out for s in sessions)

    await asyncio.sleep(max(0.0, start - time.monotonic()))
    cpu_before, relayed_before = _cpu(), relayed()
    await asyncio.sleep(max(0.0, end + DRAIN - time.monotonic()))
    cpu = _cpu() - cpu_before
    count = relayed() - relayed_before
    sent = send_parent.recv()
    received, transit, jitter = recv_parent.recv()
    for process in processes:
        process.join(timeout=10)
    verified = await _verify(sessions, phones, recv_keys, mode)
    rejected = sum(s.a.stats().rejected + s.b.stats().rejected for s in sessions)
    for session in sessions:
        session.close()
    for sock in socks:
        sock.close()
    return {
        "relay": mode,
        "rate": count / args.duration,
        "cpu_per_k": 1000 * cpu / max(count, 1),
        "loss": 1 - received / max(sent, 1),
        "transit": transit,
        "jitter": jitter,
        "kernel_drops": _udp_receive_errors() - errors_before,
        "rejected": rejected,
        "verified": verified,
    }


async def _verify(
    sessions: list[RelaySession],
    phones: list[tuple[socket.socket, socket.socket]],
    recv_keys: list[bytes | None],
    mode: str,
) -> str:
    """One packet B->A per call after the run: what phone A gets must be what B sent."""
    if mode == "plain":
        return "-"
    loop = asyncio.get_running_loop()
    good = 0
    for index, (session, (phone_a, phone_b)) in enumerate(zip(sessions, phones, strict=True)):
        packet = HEADER.pack(0x80, 0, 65000, 7, 0xABC) + FILLER
        key_b = None
        srtp_b = session.b.srtp
        if isinstance(srtp_b, LegSrtp):
            key_b = srtp_b.remote.key_salt
        phone_b.sendto(_session(key_b, True).protect(packet) if key_b else packet,
                       (HOST, session.b.local_port))  # fmt: skip
        key_a = recv_keys[index]
        assert key_a is not None
        try:
            data = await asyncio.wait_for(loop.sock_recv(phone_a, 4096), 1.0)
            while data[8:12] != (0xABC).to_bytes(4, "big"):  # skip the run's late packets
                data = await asyncio.wait_for(loop.sock_recv(phone_a, 4096), 1.0)
            good += _session(key_a, False).unprotect(data) == packet
        except (TimeoutError, pylibsrtp.Error):
            pass
    return f"{good}/{len(sessions)}"


def _report(loop_name: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    print(f"\nloop: {loop_name} (medians of {len(next(iter(rows.values())))} rounds)")
    print(
        f"{'relay':<10} {'pkts/s':>8} {'us/pkt':>7} {'pkts/s per core':>16} {'loss':>7} "
        f"{'transit p50/p99 us':>19} {'|D| p99 us':>11} {'drops':>6} {'auth fail':>9} "
        f"{'verified':>9}"
    )
    cost = {}
    for mode, runs in rows.items():
        per_k = statistics.median(r["cpu_per_k"] for r in runs)
        cost[mode] = per_k
        last = runs[-1]
        transit = f"{last['transit'][0]}/{last['transit'][1]}"
        print(
            f"{mode:<10} {statistics.median(r['rate'] for r in runs):>8.0f} {per_k * 1000:>7.1f} "
            f"{1000 / per_k:>16.0f} {max(r['loss'] for r in runs):>7.2%} {transit:>19} "
            f"{last['jitter'][1]:>11} {sum(r['kernel_drops'] for r in runs):>6} "
            f"{sum(r['rejected'] for r in runs):>9} {last['verified']:>9}   rounds: "
            + " ".join(f"{r['cpu_per_k'] * 1000:.1f}" for r in runs)
        )
    plain = cost["plain"]
    for mode in MODES[1:]:
        print(f"CPU per packet, {mode} / plain: {cost[mode] / plain:.2f}  (target <= 1.5)")


def cipher_cost() -> dict[str, float]:
    """Microseconds per protect and unprotect of one 172-byte packet (best of 7, warm).

    ``protect``/``unprotect`` go through callway's in-place step (what the
    relay calls per RTP packet), after a copy into the scratch buffer where
    the relay receives; the ``floor_*`` figures are the minimal loop on the
    same packets: copy into a buffer and one libsrtp call through the cffi
    binding, nothing else (what no Python wrapper can go below).
    """
    phone, ours = (CryptoAttribute.generate(1, SUITE) for _ in range(2))
    packet = HEADER.pack(0x80, 0, 1, 1, 1) + FILLER
    phone_out = _session(phone.key_salt, True)
    sealed = [phone_out.protect(HEADER.pack(0x80, 0, n, n, 1) + FILLER) for n in range(20000)]
    view = scratch_view()
    assert view is not None
    size = len(packet)
    protect_into = LegSrtp(ours, phone).protect_into
    assert protect_into is not None

    def protect_step() -> None:
        view[0:size] = packet
        protect_into(size)

    def fresh_step() -> Any:
        unprotect_into = LegSrtp(ours, phone).unprotect_into  # a new replay window
        assert unprotect_into is not None

        def unprotect(data: bytes) -> None:
            view[0 : len(data)] = data
            unprotect_into(len(data))

        return unprotect

    figures = {"protect": _best(protect_step, 20000)}
    figures["unprotect"] = _best_fresh(fresh_step, sealed)
    binding = importlib.import_module("pylibsrtp._binding")
    lib, ffi = binding.lib, binding.ffi
    cdata, cell = ffi.new("unsigned char[]", 2300), ffi.new("int *")
    buf = ffi.buffer(cdata)
    policy = pylibsrtp.Policy(key=ours.key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True  # as callway's outbound sessions: the same packet each time
    session = pylibsrtp.Session(policy)
    session_t = session._srtp[0]

    def protect() -> None:
        buf[0:size] = packet
        cell[0] = size
        lib.srtp_protect(session_t, cdata, cell)

    figures["floor_protect"] = _best(protect, 20000)

    def fresh_unprotect() -> Any:
        inbound = _session(phone.key_salt, False)  # a new replay window per repeat
        inbound_t = inbound._srtp[0]

        def unprotect(data: bytes) -> None:
            buf[0 : len(data)] = data
            cell[0] = len(data)
            lib.srtp_unprotect(inbound_t, cdata, cell)

        unprotect.session = inbound  # type: ignore[attr-defined]  # keep it alive
        return unprotect

    figures["floor_unprotect"] = _best_fresh(fresh_unprotect, sealed)
    return figures


def _best(func: Any, number: int) -> float:
    return min(timeit.repeat(func, number=number, repeat=7)) / number * 1e6


def _best_fresh(make: Any, packets: list[bytes]) -> float:
    """Best of 7 passes over ``packets``, each with a fresh step from ``make()``."""
    runs = []
    for _ in range(7):
        step = make()
        began = time.perf_counter()
        for data in packets:
            step(data)
        runs.append(time.perf_counter() - began)
    return min(runs) / len(packets) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--pps", type=int, default=50, help="packets/s per leg and direction")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of traffic per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode, alternated")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    args = parser.parse_args()
    if not 1 <= args.calls <= 2000 or not 1 <= args.pps <= 1000 or not 0 < args.duration <= 120:
        parser.error("keep --calls <= 2000, --pps <= 1000, --duration <= 120")
    loop_name = args.loop
    if loop_name == "auto":
        try:
            import uvloop  # noqa: F401

            loop_name = "uvloop"
        except ImportError:
            loop_name = "asyncio"
    print(
        f"{args.calls} calls x 2 directions x {args.pps} pkt/s, 172-byte RTP "
        f"(+10-byte SRTP tag), {args.duration:.0f} s per run, {SUITE}"
    )
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            loop = _new_loop(loop_name)
            try:
                rows[mode].append(loop.run_until_complete(measure(mode, args)))
            finally:
                loop.close()
    _report(loop_name, rows)
    cost = cipher_cost()
    print(f"libsrtp through callway's in-place step, per packet: protect {cost['protect']:.2f} us, "
          f"unprotect {cost['unprotect']:.2f} us (best of 7, in process, warm)")  # fmt: skip
    print(f"floor (copy in + libsrtp call, nothing else): protect {cost['floor_protect']:.2f} us, "
          f"unprotect {cost['floor_unprotect']:.2f} us")  # fmt: skip


if __name__ == "__main__":
    main()

"""Relayed G.711 calls one ``callway pbx`` process holds: loss, added jitter, CPU per call.

Run from the repository root::

    .venv/bin/python bench/bench_media.py [--calls 500,750,1000] [--duration 10] [--keep]

Topology (all on 127.0.0.1), per step of N calls:

1. a real ``callway pbx`` (``bench_calls.py``'s configuration: endpoint ``sipp``,
   ``Dial(PJSIP/uas)``, AOR ``uas`` with a static contact; RTP ports
   40000-49999, media anchored at the PBX, symmetric latching as configured
   by default), one process for the whole run;
2. this process binds 2N UDP "phone" sockets; a sipp caller
   (``scenarios/media_uac.xml``) sets up N calls through the PBX to a sipp
   callee (``scenarios/media_uas.xml``), each SDP naming one phone socket
   (``-inf``), and both log the relay port the PBX put in its SDP;
3. once every call is up, a sender process (forked, holding the phone
   sockets) sends 172-byte RTP (PCMU, 20 ms) at 50 packets/s from every
   phone to its relay port, both legs of every call, streams staggered over
   the 20 ms period; a receiver process reads every phone socket.  The
   PBX relays leg A to leg B and back, as for any call;
4. then the caller hangs every call up (BYE) and the step must end with sipp
   reporting no failed call.

Figures per step (over the traffic window): loss (packets sent vs
received), one-way transit p50/p99 and the delay variation between
consecutive packets of a stream, |D(i-1,i)| of RFC 3550 §6.4.1 (transit
measured from the actual send time, so the sender's own lateness is not
counted), p99; the PBX process's CPU (utime+stime from /proc) in cores;
relayed packets/s per core and concurrent calls per core.  A ``direct``
row first sends the same streams phone to phone without the PBX: the
harness's own floor (kernel, receiver scheduling) for |D|; "added jitter"
is the relayed p99 minus that floor.  Target (issue #3): 500 calls per core
with no loss and added jitter p99 under 5 ms.

The sender and receiver are Python processes on the same machine as the
PBX (2 cores here).  By default the PBX is pinned to the first CPU and the
load tools (sipp, sender, receiver) to the others (``--no-pin``: let the
scheduler place them), so the PBX's figures are those of one core; other
processes of the machine are not kept off it.  The achieved send rate and
the load tools' CPU are printed too: when the tools' core is saturated the
``direct`` floor rises, and so does every |D| measured.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import _common as common  # noqa: E402  (scratch directory, cProfile report)
import bench_balancer as bb  # noqa: E402  (wait_port, sipp counters)
import bench_calls as bc  # noqa: E402  (the PBX's bench configuration)
import bench_register as br  # noqa: E402  (process registry, /proc CPU helpers)
from bench_relay import receiver, sender  # noqa: E402  (RTP streams, loss and |D|)

CPUS = sorted(os.sched_getaffinity(0))
# With --pin the PBX gets the first CPU, the load tools (sipp, sender, receiver) the others.
PBX_CPUS = set(CPUS[:1])
TOOL_CPUS = set(CPUS[1:]) or set(CPUS)

HOST = br.HOST
UAC_XML = BENCH / "scenarios" / "media_uac.xml"
UAS_XML = BENCH / "scenarios" / "media_uas.xml"
PPS = 50  # G.711 with 20 ms packets, per leg and direction
SETUP_RATE = 200  # calls set up per second
STARTUP = 0.5  # seconds between forking sender/receiver and the first packet
DRAIN = 0.5  # seconds the receiver keeps reading after the last packet
JITTER_TARGET_MS = 5.0
CALLS_PER_CORE_TARGET = 500


class StepError(RuntimeError):
    """A step through the PBX did not get its calls up or down; the message says what sipp saw."""


@dataclass
class Figures:
    name: str
    calls: int
    sent: int
    received: int
    duration: float
    transit_us: tuple[int, int]  # p50, p99
    jitter_us: tuple[int, int]  # |D| p50, p99
    pbx_cpu: float  # seconds over the window (0 for direct)
    kernel_drops: int
    failed_calls: int = 0
    tools_cpu: float = 0.0  # sender + receiver CPU seconds

    @property
    def loss(self) -> float:
        return max(0.0, 1 - self.received / max(1, self.sent))

    @property
    def cores(self) -> float:
        return self.pbx_cpu / self.duration

    @property
    def relayed_pps(self) -> float:
        return self.received / self.duration


# --------------------------------------------------------------- phones and traffic


def bind_phones(count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        socks.append(sock)
    return socks


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def _pinned(target: Any, cpus: set[int] | None) -> Any:
    def run(*args: Any) -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        target(*args)

    return run


def traffic(
    socks: list[socket.socket],
    targets: list[tuple[str, int]],
    duration: float,
    pid: int | None,
    pin: bool,
) -> tuple[int, int, tuple[int, int], tuple[int, int], float, int, float]:
    """Send PPS per socket to its target for ``duration``.

    Returns sent, received, transit and |D| percentiles, the PBX's CPU
    seconds, kernel receive drops and the load tools' CPU seconds.
    """
    tools = TOOL_CPUS if pin else None
    context = multiprocessing.get_context("fork")
    recv_parent, recv_child = context.Pipe(duplex=False)
    send_parent, send_child = context.Pipe(duplex=False)
    start = time.monotonic() + STARTUP
    end = start + duration
    processes = [
        context.Process(target=_pinned(receiver, tools), args=(recv_child, socks, end + DRAIN)),
        context.Process(target=_pinned(sender, tools),
                        args=(send_child, socks, targets, PPS, duration, start, 0)),
    ]  # fmt: skip
    tools_before = _children_cpu()
    for process in processes:
        process.start()
    drops_before = br.udp_rcvbuf_errors()
    time.sleep(max(0.0, start - time.monotonic()))
    cpu_before = br.group_cpu(pid) if pid else 0.0
    time.sleep(max(0.0, end + DRAIN - time.monotonic()))
    cpu = (br.group_cpu(pid) - cpu_before) if pid else 0.0
    sent = send_parent.recv()
    received, transit, jitter = recv_parent.recv()
    for process in processes:
        process.join(timeout=10)
    drops = br.udp_rcvbuf_errors() - drops_before
    return sent, received, transit, jitter, cpu, drops, _children_cpu() - tools_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def direct(calls: int, duration: float, pin: bool) -> Figures:
    """Phone A <-> phone B without the PBX: the harness's floor."""
    socks = bind_phones(2 * calls)
    try:
        pairs = [(socks[i], socks[i + 1]) for i in range(0, len(socks), 2)]
        targets = []
        for a, b in pairs:
            targets += [(HOST, port_of(b)), (HOST, port_of(a))]
        ordered = [s for pair in pairs for s in pair]
        sent, received, transit, jitter, _, drops, tools = traffic(
            ordered, targets, duration, None, pin
        )
    finally:
        for sock in socks:
            sock.close()
    return Figures("direct", calls, sent, received, duration, transit, jitter, 0.0, drops,
                   tools_cpu=tools)  # fmt: skip


# --------------------------------------------------------------- calls through the PBX


def write_inf(path: Path, ports: list[int]) -> None:
    path.write_text("SEQUENTIAL\n" + "".join(f"{port};\n" for port in ports))


def relay_ports(log: Path, tag: str) -> dict[int, int]:
    """``<tag> <phone port> <relay port> (...)`` lines of a sipp -trace_logs file."""
    found = {}
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            parts = line.split()
            for index in range(len(parts) - 2):
                phone, relay = parts[index + 1], parts[index + 2]
                if parts[index] == tag and phone.isdigit() and relay.isdigit():
                    found[int(phone)] = int(relay)
                    break
    return found


def start_sipp(argv: list[str], log: Path, work: Path, pin: bool) -> subprocess.Popen[bytes]:
    proc = br.PROCS.start(argv, stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                          stderr=subprocess.STDOUT, cwd=work)  # fmt: skip
    if pin:
        os.sched_setaffinity(proc.pid, TOOL_CPUS)
    return proc


def through_pbx(
    server: bc.Server, uas_port: int, calls: int, duration: float, work: Path, pin: bool
) -> Figures:
    """N calls set up by sipp through the PBX, then RTP on both legs of each."""
    assert server.proc is not None
    step = work / f"step-{calls}"
    step.mkdir()
    a_socks, b_socks = bind_phones(calls), bind_phones(calls)
    write_inf(step / "caller.csv", [port_of(s) for s in a_socks])
    write_inf(step / "callee.csv", [port_of(s) for s in b_socks])
    sipp = shutil.which("sipp") or "sipp"
    uas = start_sipp([sipp, "-sf", str(UAS_XML), "-inf", str(step / "callee.csv"), "-nostdin",
                      "-i", HOST, "-p", str(uas_port), "-t", "u1", "-trace_logs",
                      "-log_file", str(step / "uas-logs.log")],
                     step / "uas.out", step, pin)  # fmt: skip
    bb.wait_port(uas_port, uas, step / "uas.out")
    setup = calls / SETUP_RATE
    hold = setup + 5.0 + STARTUP + duration + DRAIN + 2.0
    uac = start_sipp([sipp, f"{HOST}:{server.port}", "-sf", str(UAC_XML), "-inf",
                      str(step / "caller.csv"), "-nostdin", "-i", HOST,
                      "-p", str(br.free_udp_port()), "-t", "u1", "-s", "1000", "-m", str(calls),
                      "-r", str(SETUP_RATE), "-rp", "1000", "-l", str(calls),
                      "-d", str(int(hold * 1000)), "-timeout", f"{int(hold + setup + 30)}s",
                      "-timeout_error", "-trace_logs", "-log_file", str(step / "uac-logs.log"),
                      "-trace_err", "-error_file", str(step / "uac-errors.log")],
                     step / "uac.out", step, pin)  # fmt: skip
    try:
        a_relay, b_relay = wait_calls(step, calls, setup + 5.0, (uac, uas))
        socks = a_socks + b_socks
        targets = [(HOST, a_relay[port_of(s)]) for s in a_socks]
        targets += [(HOST, b_relay[port_of(s)]) for s in b_socks]
        sent, received, transit, jitter, cpu, drops, tools = traffic(
            socks, targets, duration, server.proc.pid, pin
        )
        try:
            uac.wait(timeout=hold + setup + 40)
        except subprocess.TimeoutExpired:
            raise StepError(f"the sipp caller did not end its calls{sipp_tail(step)}") from None
        out = (step / "uac.out").read_text(errors="replace")
        failed = bb.sipp_counter(out, "Failed call")
        ok = bb.sipp_counter(out, "Successful call")
        failed = max(failed, calls - ok)
    finally:
        br.PROCS.stop(uac)
        br.PROCS.stop(uas)
        for sock in a_socks + b_socks:
            sock.close()
    return Figures("callway", calls, sent, received, duration, transit, jitter, cpu, drops,
                   failed, tools)  # fmt: skip


def wait_calls(
    step: Path, calls: int, limit: float, sipps: tuple[subprocess.Popen[bytes], ...]
) -> tuple[dict[int, int], dict[int, int]]:
    """Wait until both sipps logged the relay port of every call; StepError if they cannot."""
    deadline = time.monotonic() + limit
    while True:
        a = relay_ports(step / "uac-logs.log", "A")
        b = relay_ports(step / "uas-logs.log", "B")
        if len(a) >= calls and len(b) >= calls:
            return a, b
        exited = [p for p in sipps if p.poll() is not None]
        if exited or time.monotonic() > deadline:
            why = "a sipp exited" if exited else f"not within {limit:.1f} s"
            raise StepError(f"only {len(a)}/{len(b)} of {calls} calls up ({why})"
                             f"{sipp_tail(step)}")  # fmt: skip
        time.sleep(0.2)


def sipp_tail(step: Path, lines: int = 8) -> str:
    """The last lines of the caller's error log and screen: why calls failed."""
    text = ""
    for name in ("uac-errors.log", "uac.out", "uas.out"):
        path = step / name
        if path.exists():
            tail = path.read_text(errors="replace").strip().splitlines()[-lines:]
            if tail:
                text += f"\n    {name}:\n      " + "\n      ".join(tail)
    return text


# --------------------------------------------------------------- report


def header() -> None:
    print(f"{'path':8s} {'calls':>5s} {'sent/s':>8s} {'loss':>7s} {'transit p50/p99 ms':>19s} "
          f"{'|D| p99 ms':>10s} {'added ms':>8s} {'PBX cores':>9s} {'pkts/s/core':>11s} "
          f"{'calls/core':>10s} {'drops':>6s} {'failed':>6s} {'tools cores':>11s}")  # fmt: skip


def row(fig: Figures, floor_us: int | None) -> None:
    # (received > sent happens when a stray datagram from another process hits a phone port)
    transit = f"{fig.transit_us[0] / 1000:.2f}/{fig.transit_us[1] / 1000:.2f}"
    added = "" if floor_us is None else f"{max(0, fig.jitter_us[1] - floor_us) / 1000:8.2f}"
    cores = f"{fig.cores:9.3f}" if fig.pbx_cpu else f"{'':9s}"
    per_core = f"{fig.relayed_pps / fig.cores:11.0f}" if fig.pbx_cpu else f"{'':11s}"
    calls_core = f"{fig.calls / fig.cores:10.0f}" if fig.pbx_cpu else f"{'':10s}"
    print(f"{fig.name:8s} {fig.calls:5d} {fig.sent / fig.duration:8.0f} {fig.loss:7.2%} "
          f"{transit:>19s} {fig.jitter_us[1] / 1000:10.2f} {added:>8s} {cores} {per_core} "
          f"{calls_core} {fig.kernel_drops:6d} {fig.failed_calls:6d} "
          f"{fig.tools_cpu / fig.duration:11.2f}", flush=True)  # fmt: skip


def verdict(fig: Figures, floor_us: int) -> str:
    added_ms = max(0, fig.jitter_us[1] - floor_us) / 1000
    clean = fig.loss == 0 and fig.failed_calls == 0 and added_ms < JITTER_TARGET_MS
    per_core = fig.calls / fig.cores if fig.pbx_cpu else 0.0
    return (f"  {fig.calls} calls: {'clean' if clean else 'NOT clean'} (loss {fig.loss:.3%}, "
            f"added |D| p99 {added_ms:.2f} ms), {per_core:.0f} calls per PBX core "
            f"(target {CALLS_PER_CORE_TARGET} with no loss and < {JITTER_TARGET_MS:.0f} ms): "
            f"{'met' if clean and per_core >= CALLS_PER_CORE_TARGET else 'NOT met'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="500", help="comma-separated concurrent call counts")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of RTP per step")
    parser.add_argument("--no-direct", action="store_true", help="skip the phone-to-phone floor")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-pin", action="store_true",
                        help="let the scheduler place the PBX and the load tools")  # fmt: skip
    args = parser.parse_args(argv)
    pin = not args.no_pin and len(CPUS) > 1
    counts = [int(c) for c in args.calls.split(",")]
    if not all(1 <= c <= 2000 for c in counts) or not 0 < args.duration <= 60:
        parser.error("keep --calls within 1-2000 and --duration within 60 s")
    if shutil.which("sipp") is None:
        print("sipp is not installed (see PEERS.md)", file=sys.stderr)
        return 2
    started = time.monotonic()
    print(f"G.711 calls through one callway pbx: {PPS} pkt/s per leg and direction, "
          f"172-byte RTP, {args.duration:.0f} s of traffic per step")  # fmt: skip
    if pin:
        print(f"PBX pinned to CPU {sorted(PBX_CPUS)}, sipp/sender/receiver to {sorted(TOOL_CPUS)}")
    results: list[tuple[Figures, int]] = []
    try:
        with common.workdir("media", args.keep) as work:
            header()
            for calls in counts:
                floor = direct(calls, args.duration, pin) if not args.no_direct else None
                if floor is not None:
                    row(floor, None)
                try:
                    fig = run_step(work, calls, args.duration, pin)
                except StepError as exc:  # a row saying so, and the next step still runs
                    print(f"{'callway':8s} {calls:5d} step failed: {exc}", flush=True)
                    continue
                floor_us = floor.jitter_us[1] if floor is not None else 0
                row(fig, floor_us)
                results.append((fig, floor_us))
            print()
            for fig, floor_us in results:
                print(verdict(fig, floor_us))
    finally:
        br.PROCS.stop_all()
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


def quiet_udp_port() -> int:
    """A free UDP port below the kernel's ephemeral range, for the callee sipp.

    The step binds 2N phone sockets to port 0 between choosing the callee's
    port and starting it; a port from the ephemeral range (what port 0 gives)
    is then often taken by one of them (UDP hands out the least used hash
    slots first) and sipp exits with "Unable to bind main socket".
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(max(1024, low - 8000), low), min(200, low - 1024)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    return br.free_udp_port()


def run_step(work: Path, calls: int, duration: float, pin: bool) -> Figures:
    """Start a PBX whose callee AOR is this step's sipp, run the step, stop the PBX."""
    uas_port = quiet_udp_port()
    server = bc.start_callway(work, uas_port)
    assert server.proc is not None
    if pin:
        os.sched_setaffinity(server.proc.pid, PBX_CPUS)
    try:
        return through_pbx(server, uas_port, calls, duration, work, pin)
    finally:
        assert server.proc is not None
        br.PROCS.stop(server.proc)


if __name__ == "__main__":
    sys.exit(main())

"""Memory check of ``callway pbx``: 20,000 calls and 50,000 registrations, no leak.

Run from the repository root (not a test; about four minutes)::

    .venv/bin/python bench/bench_memory.py [--calls 20000] [--registrations 50000] [--keep]
        [--debug-memory] [--tracemalloc FRAMES]

One PBX on 127.0.0.1 serves two sipp loads side by side:

- calls: ``bench/scenarios/calls_uac.xml`` from endpoint ``sipp`` (no auth)
  to ``Dial(PJSIP/uas)``, a sipp UAS (``calls_uas.xml``) on a static AOR
  contact; INVITE, 180, 200, ACK, BYE; media anchored at the PBX (an RTP/RTCP
  pair per leg), CDRs written;
- registrations: ``bench/scenarios/register_auth.xml`` over 100 endpoints
  ``u0..u99`` with digest auth (REGISTER, 401, REGISTER with credentials,
  200), each with a new Call-ID (``max_contacts=1``, ``remove_existing=yes``).

The PBX's resident memory (``VmRSS`` of /proc/PID/status) is sampled three
times, each once the PBX is idle and every finished transaction, nonce and
dialog it keeps for RFC 3261's timers has expired (``--settle`` seconds, 34
by default: Timer J/K and the 32 s of Timer H/F, the 30 s nonce lifetime):

1. after the first 1,000 calls (with their share of registrations, 2,500):
   the issue's baseline;
2. after a warm-up at the full rate up to call 10,500 of the default 20,000
   (about 45 s of load, longer than the 32 s of Timer H/J): the PBX has then
   held its full working set at this rate (32 s of finished transactions,
   30 s of nonces) once;
3. at the end.

It prints the three samples, the peak while loaded, the growth from each of
the first two samples to the end (target: within 10%) and the PBX's SIGUSR1
live counts at the end.

Why two baselines: the first 1,000 calls last a few seconds, so the PBX has
then held a tenth of the working set it holds later at the same rate (32 s
of finished transactions, 30 s of nonces).  Growth from the first 1,000
calls is the issue's figure: it shows whether the memory of the load's peak
is given back.  Growth from sample 2, taken at the same load phase and the
same settled state as the end, is what a leak would show.

What the peak is and why it is given back: nearly all of it is state kept
for RFC 3261's timers.  Kept as Python objects (about 1 KB per resting
REGISTER, 2 KB per INVITE transaction in Accepted) it filled about 85 MB of
pymalloc arenas, and a few hundred long-lived objects made during the load
(each user's latest binding, the last CDRs) pinned them: the settled RSS
followed the highest working set seen (+89% from sample 1 before this was
changed).  Finished transactions now rest as records in 1 MiB memory maps
with their index in two arrays (``sip/transaction/resting.py``), and
nonces' ``nc`` in arrays indexed by their sequence number
(``sip/digest_nonce.py``): the peak holds almost no small objects, and a map
is unmapped once its records have expired.  Measured: 75.2 MiB after the
first 1,000 calls, 77.2 MiB at the end (+2.6%), a peak of 105 MiB under
load; ``--debug-memory`` shows pymalloc's blocks the same at all three
samples.  The PBX's SIGUSR1 line reports ``resting_kib``, the memory the
resting records take at that moment.

Every process started here is stopped on exit, including Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import _common as common  # noqa: E402  (scratch directory, cProfile report)
import bench_calls as bc  # noqa: E402  (the sipp UAS, scenarios)
import bench_register as br  # noqa: E402  (process registry, /proc helpers)

HOST = br.HOST
USERS = 100
CALL_RATE = 300  # calls per second
REGISTER_RATE = 600  # registrations per second (two transactions each)
FIRST = 1000  # calls before the baseline sample
WARM_SECONDS = 34  # load at the full rate before the second sample: Timer J/H and nonces
TARGET = 0.10  # growth allowed between the two samples

# bench_calls' PBX (the sipp caller and the sipp UAS) plus one shared digest credential.
AUTH_SECTION = f"""
[{br.AUTH_USER}]
type=auth
auth_type=userpass
username={br.AUTH_USER}
password={br.AUTH_PASS}
"""
USER = """
[{user}]
type=endpoint
context=bench
disallow=all
allow=ulaw
auth={auth}
aors={user}

[{user}]
type=aor
max_contacts=1
remove_existing=yes
"""
STATS = re.compile(r"stats: (.*)")
MEMORY = re.compile(r"memory: (.*)")


@dataclass
class Pbx:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path


def start_pbx(work: Path, uas_port: int, env: dict[str, str] | None = None) -> Pbx:
    port = br.free_udp_port()
    conf = work / "pbx"
    conf.mkdir()
    text = bc.PJSIP_CONF.format(host=HOST, port=port, uas_port=uas_port) + AUTH_SECTION
    text += "".join(USER.format(user=f"u{i}", auth=br.AUTH_USER) for i in range(USERS))
    (conf / "pjsip.conf").write_text(text)
    (conf / "extensions.conf").write_text(bc.EXTENSIONS_CONF)
    (conf / "callway.toml").write_text(
        f'[rtp]\nbind = "{HOST}"\nstart = 40000\nend = 49999\n\n'
        f'[admin]\nlisten = "{HOST}:{br.free_udp_port()}"\n'
    )
    log = work / "pbx.log"
    argv = [sys.executable, "-m", "callway", "pbx", "-c", str(conf)]
    proc = br.PROCS.start(argv, stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                          stderr=subprocess.STDOUT, cwd=conf, env=env)  # fmt: skip
    bc.bb.wait_port(port, proc, log, limit=20.0)
    return Pbx(proc, port, log)


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (/proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def live_counts(pbx: Pbx, timeout: float = 5.0) -> str:
    """The PBX's SIGUSR1 ``stats:`` line (channels, dialogs, transactions, ...)."""
    before = len(STATS.findall(pbx.log.read_text(errors="replace")))
    pbx.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = STATS.findall(pbx.log.read_text(errors="replace"))
        if len(found) > before:
            return str(found[-1])
        time.sleep(0.05)
    return "(no stats line)"


def memory_report(pbx: Pbx, timeout: float = 30.0) -> list[str]:
    """The PBX's SIGUSR2 ``memory:`` lines (RSS, Python blocks, heap, growth by site)."""
    before = len(MEMORY.findall(pbx.log.read_text(errors="replace")))
    pbx.proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    found: list[str] = []
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = MEMORY.findall(pbx.log.read_text(errors="replace"))[before:]
        if now and now == found:  # complete: nothing more in the last half second
            return [str(line) for line in now]
        found = now
    return found or ["(no memory lines)"]


class Peak:
    """Samples the PBX's RSS every 0.5 s in the background; keeps the highest."""

    def __init__(self, pid: int) -> None:
        self.pid, self.value = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(OSError, RuntimeError):
                self.value = max(self.value, rss_kib(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.value


# --------------------------------------------------------------- loads


def _sipp(target: int, scenario: Path, count: int, rate: int, work: Path, *extra: str) -> list[str]:
    limit = int(count / rate * 3 + 60)
    return [
        shutil.which("sipp") or "sipp", f"{HOST}:{target}", "-sf", str(scenario), "-nostdin",
        "-i", HOST, "-p", str(br.free_udp_port()), "-t", "u1", "-m", str(count),
        "-r", str(rate), "-rp", "1000", "-l", "200", "-timeout", f"{limit}s",
        "-timeout_error", "-max_recv_loops", "10000", "-max_sched_loops", "10000",
        "-trace_err", "-error_file", str(work / f"{scenario.stem}-{count}-errors.log"), *extra,
    ]  # fmt: skip


@dataclass
class Load:
    calls_ok: int
    calls_failed: int
    registrations_ok: int
    registrations_failed: int
    seconds: float


def run_load(pbx: Pbx, calls: int, registrations: int, users_csv: Path, work: Path) -> Load:
    """Calls and registrations side by side; returns sipp's counts."""
    call_argv = _sipp(pbx.port, bc.UAC_XML, calls, CALL_RATE, work, "-s", "1000", "-d", "0")
    reg_argv = _sipp(
        pbx.port, br.SCENARIOS / "register_auth.xml", registrations, REGISTER_RATE, work,
        "-inf", str(users_csv), "-au", br.AUTH_USER, "-ap", br.AUTH_PASS,
    )  # fmt: skip
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=work,
        )
        for argv in (call_argv, reg_argv)
    ]
    outputs = [proc.communicate()[0] for proc in procs]
    seconds = time.monotonic() - started
    counts = [
        (bc.bb.sipp_counter(out, "Successful call"), bc.bb.sipp_counter(out, "Failed call"))
        for out in outputs
    ]
    return Load(*counts[0], *counts[1], seconds)


def settle(pbx: Pbx, seconds: float) -> None:
    """Idle until the backlog is drained and every timer-kept state has expired."""
    br.wait_idle(pbx.proc.pid)
    time.sleep(seconds)


def sample(pbx: Pbx, seconds: float, when: str, debug: bool = False) -> int:
    """Settle, then the PBX's RSS in KiB (printed); with ``debug`` its memory report too."""
    settle(pbx, seconds)
    value = rss_kib(pbx.proc.pid)
    print(f"  RSS {when}, settled: {value / 1024:.1f} MiB", flush=True)
    if debug:
        for line in memory_report(pbx):
            print(f"    {line}", flush=True)
    return value


def print_growth(since: str, growth: float) -> None:
    verdict = "met" if growth <= TARGET else "NOT met"
    print(f"  growth {since} {growth:+.1%} (target within {TARGET:.0%}): {verdict}")


def print_load(name: str, load: Load) -> None:
    print(
        f"  {name}: {load.calls_ok} calls ok, {load.calls_failed} failed; "
        f"{load.registrations_ok} registrations ok, {load.registrations_failed} failed "
        f"({load.seconds:.0f} s)",
        flush=True,
    )


# --------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--registrations", type=int, default=50_000)
    parser.add_argument(
        "--settle",
        type=float,
        default=34.0,
        help="idle seconds before each sample (timer-kept state expires)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--debug-memory",
        action="store_true",
        help="print the PBX's SIGUSR2 memory report after each sample (pymalloc stats in its log)",
    )
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="run the PBX under tracemalloc (PYTHONTRACEMALLOC=FRAMES; slow) with --debug-memory",
    )
    args = parser.parse_args(argv)
    if shutil.which("sipp") is None:
        print("sipp is not installed (see PEERS.md)", file=sys.stderr)
        return 2
    first_regs = args.registrations * FIRST // args.calls
    started = time.monotonic()
    try:
        with common.workdir("memory", args.keep) as work:
            uas, uas_port = bc.start_uas(work)
            users_csv = work / "users.csv"
            br.write_users_csv(users_csv, USERS)
            env = None
            if args.tracemalloc:
                env = {**os.environ, "PYTHONTRACEMALLOC": str(args.tracemalloc)}
                args.debug_memory = True
            pbx = start_pbx(work, uas_port, env)
            pid = pbx.proc.pid
            print(f"callway pbx pid {pid}: RSS at start {rss_kib(pid) / 1024:.1f} MiB", flush=True)
            peak = Peak(pid)
            first = run_load(pbx, FIRST, first_regs, users_csv, work)
            print_load("first", first)
            baseline = sample(pbx, args.settle, f"after the first {FIRST} calls and "
                              f"{first_regs} registrations", args.debug_memory)  # fmt: skip
            # WARM_SECONDS at the nominal rate, at most half of the calls
            warm_calls = min(FIRST + CALL_RATE * WARM_SECONDS, (FIRST + args.calls) // 2)
            warm_regs = args.registrations * warm_calls // args.calls
            warm = run_load(pbx, warm_calls - FIRST, warm_regs - first_regs, users_csv, work)
            print_load("warm-up", warm)
            warmed = sample(pbx, args.settle, f"after {warm_calls} calls (working set reached)",
                            args.debug_memory)  # fmt: skip
            rest = run_load(pbx, args.calls - warm_calls, args.registrations - warm_regs,
                            users_csv, work)  # fmt: skip
            print_load("rest", rest)
            high = peak.stop()
            end = sample(pbx, args.settle, "at the end", args.debug_memory)
            counts = live_counts(pbx)
            br.PROCS.stop(pbx.proc, timeout=10)
            br.PROCS.stop(uas)
            loads = (first, warm, rest)
            ok, failed = sum(x.calls_ok for x in loads), sum(x.calls_failed for x in loads)
            regs_ok = sum(x.registrations_ok for x in loads)
            regs_failed = sum(x.registrations_failed for x in loads)
            print(f"\n  calls {ok} ok / {failed} failed, "
                  f"registrations {regs_ok} ok / {regs_failed} failed")  # fmt: skip
            print(
                f"  RSS: {baseline / 1024:.1f} MiB after the first {FIRST} calls, "
                f"{warmed / 1024:.1f} MiB after {warm_calls}, "
                f"{end / 1024:.1f} MiB at the end (peak under load {high / 1024:.1f} MiB)"
            )
            print_growth(f"from the first {FIRST} calls", end / baseline - 1)
            print_growth(f"from {warm_calls} calls (same working set)", end / warmed - 1)
            print(f"  PBX live counts at the end: {counts}")
    finally:
        br.PROCS.stop_all()
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""REGISTER throughput and CPU cost: Kamailio's registrar vs callway's PBX, driven by sipp.

Run from the repository root::

    .venv/bin/python bench/bench_register.py [--quick] [--keep]

Three servers get the same load, one after the other, on 127.0.0.1:

1. Kamailio 5.6 (``bench/kamailio-registrar.cfg``: registrar + usrloc in memory,
   ``db_mode=0``, no auth), started with ``-x tlsf -X tlsf``;
2. ``callway pbx`` with N endpoints/AORs ``u0..u{N-1}`` without ``auth=``
   (``max_contacts=1``, ``remove_existing=yes``): these REGISTERs are answered
   by the PBX's fast path (``callway.pbx.registrar_fast``);
3. the same PBX where every endpoint has digest auth (REGISTER, 401,
   REGISTER with credentials, 200: two transactions per registration), which
   takes the ordinary path (parse, validation, transaction, registrar).

sipp spreads the registrations over the N users (``-inf users.csv``,
``[field0]``).  For each server the rate is stepped up (1000, 2000, 5000, ...
per second, each step a fixed number of registrations); the ladder stops at
the first step with failed registrations or when sipp cannot reach the rate,
and (outside ``--quick``) bisects between the last good and the first bad
rate.  For every step it reports the server's CPU (utime+stime of every
process in its process group, from /proc), sipp's own CPU (from wait4), the
CPU of all processes on the machine, retransmissions, UDP RcvbufErrors and
what sipp's ``-trace_err`` log says went wrong.  Server CPU is read from
``/proc/PID/task/*/schedstat`` (nanoseconds; ``/proc/PID/stat`` ticks where
that is missing).

The verdict line is the issue's figure: callway's CPU-seconds per 1000
registrations divided by Kamailio's, at the highest rate both passed cleanly,
same scenario, same run.  On a shared machine it moves by about 10-20% from
run to run (Kamailio's own figure does); the ``srv/sipp`` columns divide by
sipp's CPU for the same work, which cancels part of that drift.

Not part of the test suite.  Every process started here is stopped on exit,
including Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SCENARIOS = BENCH / "scenarios"
KAMAILIO_CFG = BENCH / "kamailio-registrar.cfg"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
AUTH_USER, AUTH_PASS = "bench", "b3nch-pass"

FULL_RATES = [1000, 2000, 5000, 10000, 20000, 40000]
QUICK_RATES = [1000, 2000, 5000, 10000, 20000]


# --------------------------------------------------------------- processes


class Procs:
    """Every long-running child we started; stopped by PID / own process group."""

    def __init__(self) -> None:
        self.items: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        # A new session: Ctrl-C reaches only us, and Kamailio's children share
        # the group we can sum CPU over and signal.
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self.items.append(proc)
        return proc  # type: ignore[no-any-return]

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the group we created for it
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # Kamailio's children may outlive a killed main process briefly.
        for pid in group_pids(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc in self.items:
            self.items.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.items)):
            with contextlib.suppress(Exception):
                self.stop(proc)


PROCS = Procs()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces: split after the closing parenthesis.
    return text[text.rindex(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[2]) == pgid:  # field 5: pgrp
                pids.append(int(entry))
    return pids


def _runtime(pid: int) -> float | None:
    """Seconds on CPU of every thread of ``pid``, to the nanosecond (schedstat), or None."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of every live process in process group ``pgid``.

    From /proc/PID/task/*/schedstat (nanoseconds) where the kernel has it: a
    step costs Kamailio only 10-20 clock ticks, so utime+stime from
    /proc/PID/stat (whole ticks) would make its figure, the denominator of
    the verdict, move by 5-10% on rounding alone.
    """
    total = 0.0
    for pid in group_pids(pgid):
        runtime = _runtime(pid)
        if runtime is not None:
            total += runtime
            continue
        fields = _stat_fields(pid)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14, 15
    return total


def all_cpu() -> dict[int, float]:
    """utime+stime (seconds) of every live process, by PID.

    The machine-wide figure is the sum of the deltas of the processes alive at
    both ends of a step (plus sipp's own, from wait4).  /proc/stat's tick-sampled
    "cpu" line is useless here: sipp and the servers wake right after each
    timer tick and sleep again before the next, so it misses most of their work.
    """
    result = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                result[int(entry)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return result


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def udp_rcvbuf_errors() -> int:
    with open("/proc/net/snmp") as fh:
        lines = [line.split() for line in fh if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


def wait_idle(pgid: int, limit: float = 8.0) -> None:
    """Let a server drain its backlog: until it uses < 5% CPU for 0.3 s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = group_cpu(pgid)
        time.sleep(0.3)
        if group_cpu(pgid) - before < 0.015:
            return


# --------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    scenario: Path
    sipp_extra: list[str] = field(default_factory=list)
    log: Path | None = None


def write_users_csv(path: Path, users: int) -> None:
    with path.open("w") as fh:
        fh.write("SEQUENTIAL\n")
        for i in range(users):
            fh.write(f"u{i}\n")


def start_kamailio(work: Path, children: int) -> Server:
    kamailio = shutil.which("kamailio") or "/usr/sbin/kamailio"
    port = free_udp_port()
    mpath = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
    cfg = work / "kamailio.cfg"
    cfg.write_text(
        KAMAILIO_CFG.read_text()
        .replace("@PORT@", str(port))
        .replace("@CHILDREN@", str(children))
        .replace("@MPATH@", mpath)
    )
    log = work / "kamailio.log"
    rundir = work / "kamailio-run"
    rundir.mkdir()
    argv = [
        kamailio, "-DD", "-E", "-f", str(cfg), "-x", "tlsf", "-X", "tlsf", "-m", "256",
        "-P", str(work / "kamailio.pid"), "-Y", str(rundir), "-w", str(rundir),
    ]  # fmt: skip
    proc = PROCS.start(argv, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    server = Server("kamailio", proc, port, SCENARIOS / "register_noauth.xml", log=log)
    _wait_answering(server, 15.0)
    return server


def write_pjsip_conf(path: Path, users: int, auth: bool) -> None:
    lines = [
        "; generated by bench/bench_register.py",
        "[transport-udp]", "type=transport", "protocol=udp", f"bind={HOST}:0", "",
    ]  # fmt: skip
    if auth:
        # One auth object shared by every endpoint: sipp 3.6.1 cannot take the
        # digest username/password from the csv (see scenarios/register_auth.xml).
        lines += [
            f"[{AUTH_USER}]", "type=auth", "auth_type=userpass",
            f"username={AUTH_USER}", f"password={AUTH_PASS}", "",
        ]  # fmt: skip
    for i in range(users):
        user = f"u{i}"
        lines += [
            f"[{user}]", "type=endpoint", "context=default", "disallow=all", "allow=ulaw",
            f"aors={user}",
        ]  # fmt: skip
        if auth:
            lines.append(f"auth={AUTH_USER}")
        lines += ["", f"[{user}]", "type=aor", "max_contacts=1", "remove_existing=yes", ""]
    path.write_text("\n".join(lines))


def start_pbx(work: Path, users: int, auth: bool, profile: Path | None = None) -> Server:
    name = "callway-auth" if auth else "callway"
    conf = work / name
    conf.mkdir()
    write_pjsip_conf(conf / "pjsip.conf", users, auth)
    log = work / f"{name}.log"
    python = REPO / ".venv" / "bin" / "python"
    if not python.exists():
        python = Path(sys.executable)
    argv = [str(python)]
    if profile is not None:
        argv += ["-m", "cProfile", "-o", str(profile)]
    argv += ["-m", "callway"]
    argv += ["pbx", "-c", str(conf)]
    proc = PROCS.start(argv, stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=str(REPO))
    deadline = time.monotonic() + 120.0  # 10000 endpoints take a moment to load
    pattern = re.compile(rf"callway pbx ready: .*udp:{re.escape(HOST)}:(\d+)")
    while True:
        match = pattern.search(log.read_text(errors="replace"))
        if match:
            port = int(match.group(1))
            break
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not ready after 120 s; see {log}")
        time.sleep(0.1)
    scenario = SCENARIOS / ("register_auth.xml" if auth else "register_noauth.xml")
    extra = ["-au", AUTH_USER, "-ap", AUTH_PASS] if auth else []
    return Server(name, proc, port, scenario, extra, log)


def _wait_answering(server: Server, limit: float) -> None:
    """Until the server answers an OPTIONS (Kamailio: 405) on its port."""
    deadline = time.monotonic() + limit
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(0.2)
        lport = sock.getsockname()[1]
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
            msg = (
                f"OPTIONS sip:{HOST}:{server.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{lport};branch=z9hG4bK{time.time_ns()}\r\n"
                f"From: <sip:probe@{HOST}>;tag=1\r\nTo: <sip:{HOST}:{server.port}>\r\n"
                f"Call-ID: probe-{time.time_ns()}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            sock.sendto(msg.encode(), (HOST, server.port))
            with contextlib.suppress(TimeoutError):
                if sock.recv(65535).startswith(b"SIP/2.0 "):
                    return
        raise RuntimeError(f"{server.name} does not answer on port {server.port}")


# --------------------------------------------------------------- one sipp step


@dataclass
class Step:
    rate: int
    calls: int
    ok: int = 0
    failed: int = 0
    created: int = 0
    retrans: int = 0
    wall: float = 0.0
    server_cpu: float = 0.0
    sipp_cpu: float = 0.0
    system_cpu: float = 0.0
    rcvbuf_errors: int = 0
    latency_ms: float = 0.0
    killed: bool = False
    errors: Counter[str] = field(default_factory=Counter)
    error_log: Path | None = None

    @property
    def reached(self) -> bool:
        """Did sipp keep the rate (all calls done, at most 10% + 0.5 s longer than planned)?"""
        return (
            not self.killed
            and self.created >= self.calls
            and self.wall <= 1.1 * self.calls / self.rate + 0.5
        )

    @property
    def clean(self) -> bool:
        """Zero failures at the rate, and not overloaded (retransmissions <= 5% of calls)."""
        return (
            self.failed == 0
            and self.ok == self.calls
            and self.reached
            and self.retrans <= 0.05 * self.calls
        )

    @property
    def cpu_per_1000(self) -> float:
        return 1000 * self.server_cpu / self.ok if self.ok else float("nan")


_CALL_LENGTH = re.compile(r"(\d+):(\d+):(\d+):(\d+)")


def _parse_stat(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    rows = list(csv.reader(path.open(newline=""), delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


_ENTRY = re.compile(r"\d{4}-\d{2}-\d{2}\t[\d:.]+\t[\d.]+: ")
_STATUS = re.compile(r"received '(SIP/2\.0 \d{3}[^\r\n']*)")


def _classify_errors(path: Path, limit_bytes: int = 20_000_000) -> Counter[str]:
    """Count what went wrong, from sipp's -trace_err log (entries are not newline-separated)."""
    counts: Counter[str] = Counter()
    if not path.exists():
        return counts
    text = path.read_bytes()[:limit_bytes].decode(errors="replace")
    for entry in _ENTRY.split(text):
        if not entry.strip() or entry.startswith("The following events"):
            continue
        status = _STATUS.search(entry) or re.search(r"^(SIP/2\.0 \d{3}[^\r\n]*)", entry, re.M)
        got = status.group(1).strip() if status else "?"
        if "Aborting call on unexpected message" in entry:
            counts[f"aborted: unexpected {got}"] += 1
        elif "receive timeout" in entry:
            m = re.search(r"on message (\S+)", entry)
            counts[f"FAILED: no answer within 4 s to message {m.group(1) if m else '?'}"] += 1
        elif "retransmission" in entry.lower():
            counts["FAILED: max UDP retransmissions"] += 1
        elif "Dead call" in entry:
            counts[f"late {got} to a retransmission (call already done)"] += 1
        elif "Discarding message which can't be mapped" in entry:
            counts[f"late {got} for an unknown call"] += 1
        else:
            counts[entry.strip()[:80]] += 1
    return counts


def run_sipp(server: Server, users_csv: Path, rate: int, calls: int, work: Path) -> Step:
    step = Step(rate, calls)
    step_dir = work / f"{server.name}-{rate}"
    step_dir.mkdir(exist_ok=True)
    stat = step_dir / "stat.csv"
    argv = [
        shutil.which("sipp") or "/usr/bin/sipp", "-nostdin",
        "-sf", str(server.scenario), "-inf", str(users_csv),
        "-i", HOST, "-p", str(free_udp_port()), "-t", "u1",
        "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(min(max(200, rate), 15000)),
        "-recv_timeout", "4000", "-max_recv_loops", "5000", "-max_sched_loops", "5000",
        "-default_behaviors", "all,-bye",
        "-trace_err", "-max_log_size", "20000000",
        "-trace_stat", "-stf", str(stat), "-fd", "1",
        *server.sipp_extra, f"{HOST}:{server.port}",
    ]  # fmt: skip
    pgid = server.proc.pid
    cpu0, sys0, rcv0 = group_cpu(pgid), all_cpu(), udp_rcvbuf_errors()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=step_dir,
        stdout=subprocess.DEVNULL,
        stderr=(step_dir / "sipp.stderr").open("wb"),
        start_new_session=True,
    )
    PROCS.items.append(proc)
    deadline = t0 + calls / rate * 2 + 15.0
    rusage = None
    try:
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline and not step.killed:
                step.killed = True  # SIGUSR1: sipp stops and writes its statistics
                os.kill(proc.pid, signal.SIGUSR1)
                deadline += 3.0
            elif time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.02)
    finally:
        if proc.returncode is None:  # interrupted: do not leave sipp running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
        PROCS.items.remove(proc)
    step.wall = time.monotonic() - t0
    step.server_cpu = group_cpu(pgid) - cpu0
    step.rcvbuf_errors = udp_rcvbuf_errors() - rcv0
    step.sipp_cpu = rusage.ru_utime + rusage.ru_stime if rusage is not None else float("nan")
    step.system_cpu = cpu_delta(sys0, all_cpu()) + step.sipp_cpu
    values = _parse_stat(stat)
    step.ok = int(values.get("SuccessfulCall(C)", 0) or 0)
    step.failed = int(values.get("FailedCall(C)", 0) or 0)
    step.created = int(values.get("OutgoingCall(C)", 0) or 0)
    step.retrans = int(values.get("Retransmissions(C)", 0) or 0)
    m = _CALL_LENGTH.search(values.get("CallLength(C)", ""))
    if m:
        h, mi, s, us = (int(x) for x in m.groups())
        step.latency_ms = ((h * 60 + mi) * 60 + s) * 1000 + us / 1000
    logs = sorted(step_dir.glob("*_errors.log"))
    if logs:
        step.error_log = logs[0]
        step.errors = _classify_errors(logs[0])
    return step


# --------------------------------------------------------------- ladder


@dataclass
class Result:
    name: str
    steps: list[Step] = field(default_factory=list)

    @property
    def best(self) -> Step | None:
        clean = [s for s in self.steps if s.clean]
        return max(clean, key=lambda s: s.rate) if clean else None

    def at(self, rate: int) -> Step | None:
        for step in self.steps:
            if step.rate == rate and step.clean:
                return step
        return None


def _fmt_errors(step: Step) -> str:
    if not step.errors:
        return ""
    return "; ".join(f"{n}x {what}" for what, n in step.errors.most_common(4))


def print_step(name: str, step: Step) -> None:
    if step.clean:
        verdict = "ok"
    elif step.failed or step.ok < step.calls:
        verdict = "FAILURES"
    elif not step.reached:
        verdict = "RATE NOT REACHED"
    else:
        verdict = "OVERLOADED (retransmissions > 5%)"
    ratio = step.server_cpu / step.sipp_cpu if step.sipp_cpu else float("nan")
    sys_ratio = step.system_cpu / step.sipp_cpu if step.sipp_cpu else float("nan")
    print(
        f"  {name:13} {step.rate:6d}/s x{step.calls:6d}: ok {step.ok:6d} fail {step.failed:5d}"
        f" retrans {step.retrans:5d} rcvbuf_err {step.rcvbuf_errors:5d}"
        f" wall {step.wall:5.2f}s lat {step.latency_ms:6.1f}ms |"
        f" server {step.server_cpu:6.2f}s sipp {step.sipp_cpu:5.2f}s system {step.system_cpu:6.2f}s"
        f" | {step.cpu_per_1000:6.3f} CPU-s/1000 srv/sipp {ratio:5.2f} sys/sipp {sys_ratio:5.2f}"
        f"  {verdict}",
        flush=True,
    )
    if step.errors:
        print(f"      errors ({step.error_log}): {_fmt_errors(step)}", flush=True)


def ladder(
    server: Server, users_csv: Path, rates: list[int], seconds: float, bisect: int, work: Path
) -> Result:
    result = Result(server.name)
    pgid = server.proc.pid
    # Warm-up (not measured): caches, first bindings.
    run_sipp(server, users_csv, 500, 500, work)
    wait_idle(pgid)
    good, bad = 0, 0
    for rate in rates:
        calls = max(1000, int(rate * seconds))
        step = run_sipp(server, users_csv, rate, calls, work)
        result.steps.append(step)
        print_step(server.name, step)
        wait_idle(pgid)
        if server.proc.poll() is not None:
            print(f"  {server.name} DIED (exit {server.proc.returncode}); see {server.log}")
            return result
        if not step.clean:
            bad = rate
            break
        good = rate
    for _ in range(bisect if bad and good else 0):
        rate = int(round((good + bad) / 2, -2))
        if rate in (good, bad):
            break
        step = run_sipp(server, users_csv, rate, max(1000, int(rate * seconds)), work)
        result.steps.append(step)
        print_step(server.name, step)
        wait_idle(pgid)
        if step.clean:
            good = rate
        else:
            bad = rate
    return result


def server_log_problems(server: Server) -> list[str]:
    if server.log is None or not server.log.exists():
        return []
    lines = server.log.read_text(errors="replace").splitlines()
    bad = [ln for ln in lines if re.search(r"\b(ERROR|CRITICAL|Traceback|WARNING)\b", ln)]
    # warnings about the generated config (no codecs, no dialplan) are noise here
    noise = ("allows no codecs", "extensions.conf not found")
    return [ln for ln in bad if not any(n in ln for n in noise)]


# --------------------------------------------------------------- main


def _ratio(step: Step) -> float:
    return step.server_cpu / step.sipp_cpu if step.sipp_cpu else float("nan")


def summary(results: list[Result]) -> None:
    kam = next((r for r in results if r.name == "kamailio"), None)
    print()
    print("REGISTER over UDP, sipp 3.6.1, 127.0.0.1; CPU = server's process group, user+system;")
    print("'@same' = the highest rate at which both this server and Kamailio passed")
    print(
        f"{'server':13} {'max rate':>9} {'CPU-s/1000':>10} {'srv/sipp':>8} |"
        f" {'@same':>7} {'CPU-s/1000':>10} {'Kam.':>6} {'x Kam.':>6}"
        f" {'srv/sipp':>8} {'Kam.':>5} {'x Kam.':>6}"
    )
    verdicts = []
    for result in results:
        best = result.best
        if best is None:
            print(f"{result.name:13} {'none':>9}")
            continue
        line = (
            f"{result.name:13} {best.rate:>7}/s {best.cpu_per_1000:>10.3f} {_ratio(best):>8.2f} |"
        )
        if kam is not None and result is not kam:
            same = {s.rate for s in result.steps if s.clean} & {
                s.rate for s in kam.steps if s.clean
            }
            if same:
                rate = max(same)
                mine, theirs = result.at(rate), kam.at(rate)
                assert mine is not None and theirs is not None
                x_cpu = mine.cpu_per_1000 / theirs.cpu_per_1000
                x_sipp = _ratio(mine) / _ratio(theirs)
                line += (
                    f" {rate:>5}/s {mine.cpu_per_1000:>10.3f} {theirs.cpu_per_1000:>6.3f}"
                    f" {x_cpu:>5.1f}x {_ratio(mine):>8.2f} {_ratio(theirs):>5.2f} {x_sipp:>5.1f}x"
                )
                if result.name == "callway":
                    ok = "MET" if x_cpu <= 5 else "NOT met"
                    verdicts.append(
                        f"target: callway without auth <= 5x Kamailio's CPU per registration:"
                        f" {x_cpu:.1f}x at {rate}/s (sipp-normalised {x_sipp:.1f}x): {ok}"
                    )
        print(line)
    for verdict in verdicts:
        print(verdict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short steps, < 60 s in all")
    parser.add_argument("--users", type=int, default=10000, help="endpoints/AORs u0..uN-1")
    parser.add_argument("--rates", help="comma-separated rates per second to step through")
    parser.add_argument("--seconds", type=float, help="length of each step at its rate")
    parser.add_argument("--kamailio-children", type=int, default=4)
    parser.add_argument("--only", help="comma-separated subset of kamailio,callway,callway-auth")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--profile", metavar="PREFIX", help="run the PBXs under cProfile: PREFIX-callway*.prof"
    )
    args = parser.parse_args(argv)
    rates = (
        [int(r) for r in args.rates.split(",")]
        if args.rates
        else (QUICK_RATES if args.quick else FULL_RATES)
    )
    seconds = args.seconds or (1.5 if args.quick else 3.0)
    bisect = 0 if args.quick else 2
    only = set(args.only.split(",")) if args.only else {"kamailio", "callway", "callway-auth"}
    for tool in ("sipp", "kamailio"):
        needed = tool in only or tool == "sipp"
        if needed and not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()):
            print(f"{tool} is not installed (apt-get install sip-tester kamailio)")
            return 2

    work = Path(tempfile.mkdtemp(prefix="callway-bench-register-"))
    users_csv = work / "users.csv"
    write_users_csv(users_csv, args.users)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    results: list[Result] = []
    started = time.monotonic()
    print(f"work dir {work}; {args.users} users; rates {rates}; {seconds} s per step", flush=True)
    try:
        for name in ("kamailio", "callway", "callway-auth"):
            if name not in only:
                continue
            t0 = time.monotonic()
            if name == "kamailio":
                server = start_kamailio(work, args.kamailio_children)
            else:
                profile = None
                if args.profile:
                    profile = Path(f"{args.profile}-{name}.prof").resolve()
                server = start_pbx(work, args.users, name == "callway-auth", profile)
            print(f"{name}: ready on {HOST}:{server.port} in {time.monotonic() - t0:.1f} s",
                  flush=True)  # fmt: skip
            try:
                results.append(ladder(server, users_csv, rates, seconds, bisect, work))
            finally:
                PROCS.stop(server.proc, timeout=15.0)
            problems = server_log_problems(server)
            if problems:
                print(f"  {name} log has {len(problems)} warning/error lines, e.g.:")
                for line in problems[:5]:
                    print(f"    {line[:200]}")
        summary(results)
        print(f"total {time.monotonic() - started:.0f} s")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        PROCS.stop_all()
        if args.keep or args.profile:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

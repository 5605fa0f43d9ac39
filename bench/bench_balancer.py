"""Call throughput and CPU cost of the load balancer: callway vs Kamailio's dispatcher.

Run from the repository root::

    .venv/bin/python bench/bench_balancer.py [--quick] [--profile RATE] [--keep]

Topology (all on 127.0.0.1): sipp caller (``lb_uac.xml``: INVITE, 200, ACK,
BYE along the learned route set, no hold) -> balancer -> two sipp UAS nodes
(``lb_uas.xml``, echoing Record-Route), one ``dispatcher.list`` with weights
50/50 for both balancers:

1. Kamailio 5.6 with ``bench/kamailio-dispatcher.cfg`` (the seed's
   ``ds_select_dst("1", "9")``, tm stateful relay, record_route), started with
   ``-x tlsf -X tlsf`` (Debian's default allocator debugs memory);
2. ``callway balancer`` with the same list and algorithm 9, once per
   ``--workers`` count (default 1 and 2: one process, then two sharing the
   port, see ``callway.app.balancer_workers``).

For each balancer the call rate is stepped up; a step is clean when sipp
reports no failed call and kept the rate.  The ladder stops at the first step
that is not clean.  Reported per step: calls, the balancer's CPU seconds per
1000 calls (utime+stime of its process group, from /proc), sipp caller's CPU
(RUSAGE_CHILDREN) and the balancer/sipp CPU ratio (the steadiest figure on a
shared machine, PEERS.md); then the CPU of the caller, of the two UAS nodes
and of the whole machine (every process, as a share of all cores: the sipps
run on the same cores, which is what limits ``--workers 2`` here) and the
balancer's resident memory.  The summary prints the highest clean CPS and the
callway/Kamailio CPU ratio at each rate both handled.

``--profile RATE`` also runs one step with the callway balancer under
cProfile and prints its hot spots.  Every process started here is stopped on
exit, including Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import _common as common  # noqa: E402  (scratch directory, cProfile report)
import bench_register as br  # noqa: E402  (its /proc CPU helpers and process registry)

SCENARIOS = REPO / "tests" / "interop" / "scenarios"
KAMAILIO_CFG = BENCH / "kamailio-dispatcher.cfg"
MPATH = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
HOST = br.HOST

FULL_RATES = [500, 1000, 1500, 2000, 3000, 4000, 5000, 6500]
QUICK_RATES = [500, 1500, 2500]
PROFILE_SECONDS = 4.0
CORES = os.cpu_count() or 1
NODE_PIDS: list[int] = []  # the sipp UAS nodes (their CPU is reported per step)


# --------------------------------------------------------------- processes


@dataclass
class Balancer:
    name: str
    proc: subprocess.Popen[bytes]
    port: int


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, limit: float = 10.0) -> None:
    needle = f"0100007F:{port:04X}"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
        if any(line.split()[1] == needle for line in lines):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not bound:\n{log.read_text(errors='replace')}")


def start_nodes(work: Path) -> list[tuple[subprocess.Popen[bytes], int]]:
    """Two sipp UAS nodes answering every INVITE (and OPTIONS probes)."""
    sipp = shutil.which("sipp") or "sipp"
    nodes = []
    for name in ("a", "b"):
        port = br.free_udp_port()
        log = work / f"node-{name}.log"
        argv = [sipp, "-sf", str(SCENARIOS / "lb_uas.xml"), "-nostdin", "-i", HOST,
                "-p", str(port), "-t", "u1", "-max_recv_loops", "10000", "-max_sched_loops",
                "10000"]  # fmt: skip
        proc = br.PROCS.start(argv, stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                              stderr=subprocess.STDOUT, cwd=work)  # fmt: skip
        wait_port(port, proc, log)
        nodes.append((proc, port))
    return nodes


def write_list(path: Path, ports: list[int]) -> None:
    lines = [f"1 sip:{HOST}:{port} 0 0 weight=50\n" for port in ports]
    path.write_text("# setid destination flags priority attributes\n" + "".join(lines))


def start_kamailio(work: Path, list_file: Path, children: int) -> Balancer:
    kamailio = shutil.which("kamailio") or "/usr/sbin/kamailio"
    port = br.free_udp_port()
    values = {"PORT": port, "CHILDREN": children, "MPATH": MPATH, "LIST": list_file,
              "PING": 10, "DEBUG": -1}  # fmt: skip
    text = KAMAILIO_CFG.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    cfg = work / "kamailio.cfg"
    cfg.write_text(text)
    rundir = work / "kamailio-run"
    rundir.mkdir(exist_ok=True)
    log = work / "kamailio.log"
    argv = [kamailio, "-DD", "-E", "-f", str(cfg), "-x", "tlsf", "-X", "tlsf", "-m", "256",
            "-P", str(work / "kamailio.pid"), "-Y", str(rundir), "-w", str(rundir)]  # fmt: skip
    proc = br.PROCS.start(argv, stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                          stderr=subprocess.STDOUT)  # fmt: skip
    wait_port(port, proc, log)
    return Balancer("kamailio", proc, port)


def start_callway(
    work: Path, list_file: Path, profile: Path | None = None, workers: int = 1
) -> Balancer:
    port = br.free_udp_port()
    conf = work / "callway"
    conf.mkdir(exist_ok=True)
    shutil.copy(list_file, conf / "dispatcher.list")
    (conf / "callway.toml").write_text(
        "[balancer]\n"
        f'listen = "udp:{HOST}:{port}"\n'
        "algorithm = 9\nping_interval = 10\nprobing_mode = 1\n"
    )
    argv = [sys.executable]
    if profile is not None:
        argv += ["-m", "cProfile", "-o", str(profile)]
    argv += ["-m", "callway", "balancer", "-c", str(conf), "--workers", str(workers)]
    log = work / f"callway-{port}.log"
    proc = br.PROCS.start(argv, stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                          stderr=subprocess.STDOUT, cwd=REPO)  # fmt: skip
    wait_port(port, proc, log)
    return Balancer("callway" if workers == 1 else f"callway-w{workers}", proc, port)


# --------------------------------------------------------------- one step


@dataclass
class Step:
    rate: int
    calls: int
    ok: int
    failed: int
    elapsed: float
    server_cpu: float
    sipp_cpu: float
    rcvbuf_errors: int
    nodes_cpu: float = 0.0  # the two sipp UAS nodes
    machine_cpu: float = 0.0  # every process on the machine, sipp's caller included
    rss_mb: float = 0.0  # the balancer's resident memory after the step (all its processes)

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.ok == self.calls and self.reached

    @property
    def reached(self) -> bool:
        return self.elapsed <= self.calls / self.rate * 1.25 + 1.5

    @property
    def cpu_per_1000(self) -> float:
        return self.server_cpu / max(1, self.ok) * 1000

    @property
    def vs_sipp(self) -> float:
        return self.server_cpu / self.sipp_cpu if self.sipp_cpu else float("nan")

    @property
    def machine_share(self) -> float:
        """The machine's CPU use during the step, of all its cores."""
        return self.machine_cpu / (self.elapsed * CORES) if self.elapsed else float("nan")


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in group ``pgid``, in MB."""
    total = 0
    for pid in br.group_pids(pgid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def sipp_counter(stdout: str, name: str) -> int:
    found = re.findall(rf"{name}\s+\|\s+\d+\s+\|\s+(\d+)", stdout)
    return int(found[-1]) if found else 0


def run_step(server: Balancer, rate: int, seconds: float, work: Path) -> Step:
    """One sipp run at ``rate``: the balancer's, sipp's, the nodes' and the machine's CPU."""
    calls = max(100, int(rate * seconds))
    sipp = shutil.which("sipp") or "sipp"
    limit = int(seconds * 3 + 10)
    argv = [sipp, f"{HOST}:{server.port}", "-sf", str(SCENARIOS / "lb_uac.xml"), "-nostdin",
            "-i", HOST, "-p", str(br.free_udp_port()), "-t", "u1", "-s", "bench",
            "-m", str(calls), "-r", str(rate), "-rp", "1000", "-l", str(max(1000, rate * 4)),
            "-d", "0", "-timeout", f"{limit}s", "-timeout_error", "-max_recv_loops", "10000",
            "-max_sched_loops", "10000", "-trace_err",
            "-error_file", str(work / f"{server.name}-{rate}-errors.log")]  # fmt: skip
    cpu_before = br.group_cpu(server.proc.pid)
    nodes_before = sum(br.group_cpu(pid) for pid in NODE_PIDS)
    all_before = br.all_cpu()
    rcv_before = br.udp_rcvbuf_errors()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=limit + 10, check=False,
                          cwd=work)  # fmt: skip
    elapsed = time.monotonic() - started
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    all_after = br.all_cpu()
    nodes_after = sum(br.group_cpu(pid) for pid in NODE_PIDS)
    br.wait_idle(server.proc.pid)
    sipp_cpu = (usage_after.ru_utime - usage_before.ru_utime) + (
        usage_after.ru_stime - usage_before.ru_stime
    )
    return Step(
        rate=rate, calls=calls, ok=sipp_counter(done.stdout, "Successful call"),
        failed=sipp_counter(done.stdout, "Failed call"), elapsed=elapsed,
        server_cpu=br.group_cpu(server.proc.pid) - cpu_before, sipp_cpu=sipp_cpu,
        rcvbuf_errors=br.udp_rcvbuf_errors() - rcv_before,
        nodes_cpu=nodes_after - nodes_before,
        machine_cpu=br.cpu_delta(all_before, all_after) + sipp_cpu,
        rss_mb=group_rss_mb(server.proc.pid),
    )  # fmt: skip


def print_step(name: str, step: Step) -> None:
    mark = "ok " if step.clean else "BAD"
    print(
        f"  {name:9s} {step.rate:5d}/s {mark} calls {step.ok:6d}/{step.calls:<6d} "
        f"failed {step.failed:4d}  {step.elapsed:5.1f} s  "
        f"CPU {step.server_cpu:6.2f} s = {step.cpu_per_1000:5.2f} s/1000 calls  "
        f"(x{step.vs_sipp:4.2f} sipp)  rcvbuf drops {step.rcvbuf_errors}\n"
        f"{'':22s}sipp caller {step.sipp_cpu:5.2f} s, UAS nodes {step.nodes_cpu:5.2f} s, "
        f"machine {step.machine_cpu:5.2f} s = {step.machine_share:4.0%} of {CORES} cores, "
        f"balancer RSS {step.rss_mb:.0f} MB",
        flush=True,
    )


def ladder(server: Balancer, rates: list[int], seconds: float, work: Path) -> list[Step]:
    steps: list[Step] = []
    for rate in rates:
        step = run_step(server, rate, seconds, work)
        print_step(server.name, step)
        steps.append(step)
        if not step.clean:
            break
    return steps


# --------------------------------------------------------------- report


def best(steps: list[Step]) -> Step | None:
    clean = [s for s in steps if s.clean]
    return max(clean, key=lambda s: s.rate) if clean else None


def summary(results: dict[str, list[Step]]) -> None:
    for name, steps in results.items():
        if name.startswith("callway"):
            compare(name, results.get("kamailio", []), steps)
    for name, steps in results.items():
        top = best(steps)
        figure = f"{top.rate} CPS ({top.cpu_per_1000:.3f} CPU-s/1000 calls)" if top else "none"
        print(f"  highest clean rate, {name}: {figure}")
    tops = [best(steps) for name, steps in results.items() if name.startswith("callway")]
    top_cw = max((t.rate for t in tops if t is not None), default=0)
    print("  targets: <= 4x Kamailio CPU per call, >= 1500 CPS: "
          f"{'met' if top_cw >= 1500 else 'NOT met'} (rate)")  # fmt: skip


def compare(name: str, kam: list[Step], cw: list[Step]) -> None:
    print(f"\n  rate   kamailio s/1000  {name:>9s} s/1000  ratio   (x sipp: kam / cw / ratio)")
    for step in cw:
        other = next((k for k in kam if k.rate == step.rate and k.clean), None)
        if other is None or not step.clean:
            continue
        ratio = step.cpu_per_1000 / other.cpu_per_1000 if other.cpu_per_1000 else float("nan")
        norm = step.vs_sipp / other.vs_sipp if other.vs_sipp else float("nan")
        cpu = f"{other.cpu_per_1000:15.3f}  {step.cpu_per_1000:14.3f}  {ratio:5.2f}x"
        vs_sipp = f"{other.vs_sipp:5.2f} / {step.vs_sipp:5.2f} / {norm:5.2f}x"
        print(f"  {step.rate:5d}  {cpu}   {vs_sipp}")


# --------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short ladder (under 60 s)")
    parser.add_argument("--rates", help="comma-separated call rates to step through")
    parser.add_argument("--seconds", type=float, help="seconds of calls per step")
    parser.add_argument("--kamailio-children", type=int, default=4)
    parser.add_argument("--workers", default="1,2", help="callway worker counts to run")
    parser.add_argument("--no-kamailio", action="store_true", help="callway only")
    parser.add_argument("--profile", type=int, metavar="RATE", help="cProfile one callway step")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")] if args.rates else (
        QUICK_RATES if args.quick else FULL_RATES)  # fmt: skip
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    for tool in ("sipp", "kamailio"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is not installed (see PEERS.md)", file=sys.stderr)
            return 2
    started = time.monotonic()
    try:
        with common.workdir("balancer", args.keep) as work:
            nodes = start_nodes(work)
            NODE_PIDS[:] = [proc.pid for proc, _ in nodes]
            list_file = work / "dispatcher.list"
            write_list(list_file, [port for _, port in nodes])
            results: dict[str, list[Step]] = {}
            if not args.no_kamailio:
                kam = start_kamailio(work, list_file, args.kamailio_children)
                results["kamailio"] = ladder(kam, rates, seconds, work)
                br.PROCS.stop(kam.proc)
            for workers in (int(w) for w in args.workers.split(",")):
                cw = start_callway(work, list_file, workers=workers)
                results[cw.name] = ladder(cw, rates, seconds, work)
                br.PROCS.stop(cw.proc)
            summary(results)
            if args.profile:
                prof = work / "balancer.prof"
                profiled = start_callway(work, list_file, profile=prof)
                print_step("cProfile", run_step(profiled, args.profile, PROFILE_SECONDS, work))
                br.PROCS.stop(profiled.proc, timeout=15)
                common.profile_report(prof, "callway balancer")
    finally:
        br.PROCS.stop_all()
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

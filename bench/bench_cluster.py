"""Shared-state cluster: the Redis store next to SQLite, and CPS with 1 and 2 PBX nodes.

Run from the repository root::

    .venv/bin/python bench/bench_cluster.py [--quick] [--keep]

One ``redis-server`` (Debian, no persistence) on a free loopback port, then,
one after the other on 127.0.0.1:

1. **REGISTER throughput**: ``callway pbx`` with N endpoints without auth
   (sipp ``bench/scenarios/register_noauth.xml`` spread over ``u0..uN-1``),
   once with ``[store] url = "sqlite"`` and once with ``redis://``; rate
   ladder as in ``bench_register.py`` (stops at the first unclean step);
2. **call CPS**: ``callway pbx`` as in ``bench_calls.py`` (sipp caller ->
   PBX ``Dial(PJSIP/uas)`` -> sipp callee, media anchored, CDRs written),
   once per store; with Redis every call also writes and deletes its
   dialog-to-node key;
3. **cluster CPS**: ``callway balancer`` (algorithm 9, weights 50/50) over 1
   and then 2 PBX nodes sharing the Redis store; the CPU figure is the sum of
   the balancer's and every node's process CPU.

On a 2-core machine sipp (caller and callee), the balancer and the nodes
compete for the same two cores: the point is the shape (does a second node
add capacity, what Redis costs per operation), not the absolute numbers.
Every process started here is stopped on exit, including Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import _common as common  # noqa: E402  (scratch directory, cProfile report)
import bench_balancer as bb  # noqa: E402
import bench_calls as bc  # noqa: E402
import bench_register as br  # noqa: E402

HOST = br.HOST


def start_redis(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_tcp_port()
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", str(work), "--daemonize", "no"]  # fmt: skip
    proc = br.PROCS.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5) as conn:
            conn.sendall(b"PING\r\n")
            if conn.recv(16).startswith(b"+PONG"):
                return proc, f"redis://{HOST}:{port}/0"
        time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def flush_redis(url: str) -> None:
    port = url.rsplit(":", 1)[1].split("/")[0]
    cli = shutil.which("redis-cli") or "redis-cli"
    subprocess.run([cli, "-p", port, "FLUSHALL"], capture_output=True, timeout=10, check=False)


def store_toml(store: str) -> str:
    return (
        f'[store]\nurl = "{store}"\n\n'
        f'[rtp]\nbind = "{HOST}"\nstart = 40000\nend = 49999\n\n'
        f'[admin]\nlisten = "{HOST}:{free_tcp_port()}"\n'
    )


def wait_ready(proc: subprocess.Popen[bytes], log: Path, limit: float = 60.0) -> int:
    pattern = re.compile(rf"callway pbx ready: .*udp:{re.escape(HOST)}:(\d+)")
    deadline = time.monotonic() + limit
    while True:
        match = pattern.search(log.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"PBX not ready; see {log}")
        time.sleep(0.1)


# --------------------------------------------------------------- 1. REGISTER


def start_registrar(work: Path, name: str, users: int, store: str) -> br.Server:
    conf = work / name
    conf.mkdir()
    br.write_pjsip_conf(conf / "pjsip.conf", users, auth=False)
    (conf / "callway.toml").write_text(store_toml(store))
    log = work / f"{name}.log"
    argv = [sys.executable, "-m", "callway", "pbx", "-c", str(conf)]
    proc = br.PROCS.start(argv, stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=str(REPO))
    port = wait_ready(proc, log)
    return br.Server(name, proc, port, BENCH / "scenarios" / "register_noauth.xml", [], log)


# --------------------------------------------------------------- 2./3. calls


def start_node(work: Path, name: str, uas_port: int, store: str) -> bc.Server:
    conf = work / name
    conf.mkdir()
    (conf / "pjsip.conf").write_text(bc.PJSIP_CONF.format(host=HOST, port=0, uas_port=uas_port))
    (conf / "extensions.conf").write_text(bc.EXTENSIONS_CONF)
    toml = store_toml(store).replace("start = 40000\nend = 49999",
                                     f"start = {40000 + 5000 * (len(name) % 2)}\n"
                                     f"end = {44999 + 5000 * (len(name) % 2)}")  # fmt: skip
    (conf / "callway.toml").write_text(toml)
    log = work / f"{name}.log"
    proc = br.PROCS.start([sys.executable, "-m", "callway", "pbx", "-c", str(conf)],
                          stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                          stderr=subprocess.STDOUT, cwd=conf)  # fmt: skip
    return bc.Server(name, proc, wait_ready(proc, log))


def cluster_ladder(
    work: Path, nodes: int, uas_port: int, store: str, rates: list[int], seconds: float
) -> list[tuple[bc.Step, float]]:
    """(step, CPU of balancer + nodes) per rate, up to the first unclean step."""
    sub = work / f"cluster{nodes}"
    sub.mkdir()
    pbxs = [start_node(sub, f"node{'x' * i}", uas_port, store) for i in range(1, nodes + 1)]
    list_file = sub / "dispatcher.list"
    bb.write_list(list_file, [p.port for p in pbxs])
    balancer = bb.start_callway(sub, list_file)
    procs = [balancer.proc] + [p.proc for p in pbxs if p.proc is not None]
    out: list[tuple[bc.Step, float]] = []
    try:
        time.sleep(1.0)  # the first probes mark the nodes up
        for rate in rates:
            before = sum(br.group_cpu(p.pid) for p in procs)
            step = bc.run_step(bc.Server(f"{nodes}-node", balancer.proc, balancer.port),
                               balancer.port, rate, seconds, sub)  # fmt: skip
            for p in procs:
                br.wait_idle(p.pid)
            cpu = sum(br.group_cpu(p.pid) for p in procs) - before
            bc.print_step(f"{nodes}-node", step)
            print(f"           cluster CPU (balancer + nodes) {cpu:6.2f} s = "
                  f"{cpu / max(1, step.ok) * 1000:5.2f} s/1000 calls", flush=True)  # fmt: skip
            out.append((step, cpu))
            if not step.clean:
                break
    finally:
        for proc in reversed(procs):
            br.PROCS.stop(proc)
    return out


# --------------------------------------------------------------- main


def best_rate(steps: list[bc.Step]) -> int:
    clean = [s.rate for s in steps if s.clean]
    return max(clean) if clean else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short ladders, < 90 s in all")
    parser.add_argument("--users", type=int, default=1000, help="registering users u0..uN-1")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    for tool in ("sipp", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    reg_rates = [2000, 4000, 6000, 8000] if args.quick else [1000, 2000, 3000, 4000, 6000, 8000]
    reg_seconds = 1.5 if args.quick else 4.0
    call_rates = [300, 450, 600] if args.quick else [100, 200, 300, 400, 500, 600, 800]
    cluster_rates = [150, 250, 350, 450] if args.quick else [100, 200, 300, 400, 500, 600, 800]
    call_seconds = 1.5 if args.quick else 4.0
    started = time.monotonic()
    summary: list[str] = []
    try:
        with common.workdir("cluster", args.keep) as work:
            redis_proc, url = start_redis(work)
            print(f"redis-server at {url}\n\n== REGISTER throughput ({args.users} users) ==")
            users_csv = work / "users.csv"
            br.write_users_csv(users_csv, args.users)
            for label, store in (("sqlite", "sqlite"), ("redis", url)):
                server = start_registrar(work, f"reg-{label}", args.users, store)
                result = br.ladder(server, users_csv, reg_rates, reg_seconds, 0, work)
                br.PROCS.stop(server.proc)
                top = result.best
                summary.append(
                    f"REGISTER/s {label:6s}: "
                    + (
                        f"{top.rate} ({top.cpu_per_1000:.3f} CPU-s/1000)"
                        if top
                        else "no clean step"
                    )
                )
            flush_redis(url)
            print("\n== call CPS, one PBX ==")
            uas, uas_port = bc.start_uas(work)
            for label, store in (("sqlite", "sqlite"), ("redis", url)):
                node = start_node(work, f"calls-{label}", uas_port, store)
                steps = bc.ladder(node, node.port, call_rates, call_seconds, work)
                assert node.proc is not None
                br.PROCS.stop(node.proc)
                top_step = bc.best(steps)
                summary.append(f"call CPS {label:6s}: " + (
                    f"{top_step.rate} ({top_step.cpu_per_1000:.2f} CPU-s/1000)" if top_step
                    else "no clean step"))  # fmt: skip
            print("\n== cluster CPS behind callway balancer (Redis store) ==")
            for nodes in (1, 2):
                results = cluster_ladder(work, nodes, uas_port, url, cluster_rates, call_seconds)
                clean = [(s, cpu) for s, cpu in results if s.clean]
                if clean:
                    step, cpu = max(clean, key=lambda item: item[0].rate)
                    per_1000 = cpu / max(1, step.ok) * 1000
                    summary.append(f"cluster CPS {nodes} node(s): {step.rate} "
                                   f"({per_1000:.2f} cluster CPU-s/1000)")  # fmt: skip
                else:
                    summary.append(f"cluster CPS {nodes} node(s): no clean step")
            br.PROCS.stop(uas)
            br.PROCS.stop(redis_proc)
    finally:
        br.PROCS.stop_all()
    print("\n== summary (highest clean rate of each ladder) ==")
    for line in summary:
        print(f"  {line}")
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

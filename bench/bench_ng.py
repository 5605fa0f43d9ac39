"""Control-plane benchmark of ``callway relay``: ng offer/answer/delete per second.

Starts ``python -m callway relay`` (or, with ``--rtpengine``, Debian's
rtpengine 10.5 in userspace) on loopback, then drives whole call set-ups
over UDP like Kamailio's module: ``offer``, ``answer``, ``delete`` per call,
``--window`` calls in flight.  Prints calls/s, the median and 99th
percentile command round trip, and the relay's CPU seconds per 1000 calls
(from ``/proc/PID/stat``).  Every reply must be ``ok``; the relay must hold
no call at the end.

    flock /tmp/callway-bench.lock .venv/bin/python bench/bench_ng.py [--calls 2000] [--window 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from callway.ng.bencode import decode, encode

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_relay(ng_port: int, ports: tuple[int, int], rtpengine: bool) -> subprocess.Popen[bytes]:
    if rtpengine:
        binary = shutil.which("rtpengine")
        if binary is None:
            sys.exit("rtpengine is not installed (apt-get install rtpengine-daemon)")
        argv = [binary, "--config-file=none", "--table=-1", "--interface=127.0.0.1",
                f"--listen-ng=127.0.0.1:{ng_port}", f"--port-min={ports[0]}",
                f"--port-max={ports[1]}", "--foreground", "--log-stderr", "--log-level=3",
                "--delete-delay=0"]  # fmt: skip
    else:
        argv = [sys.executable, "-m", "callway", "relay", "--listen",
                f"udp:127.0.0.1:{ng_port}", "--ports", f"{ports[0]}-{ports[1]}"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Driver:
    """Runs call set-ups over one UDP socket, ``window`` calls in flight."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(5.0)
        self.seq = 0
        self.rtts: list[float] = []
        self.pending: dict[bytes, tuple[float, int, str]] = {}

    def send(self, call: int, step: str) -> None:
        self.seq += 1
        cookie = b"b_%d" % self.seq
        call_id = f"bench-{call}"
        keys: dict[str, object] = {"command": step, "call-id": call_id, "from-tag": "a"}
        if step == "offer":
            keys["sdp"] = SDP.format(port=20000 + 2 * (call % 1000))
        elif step == "answer":
            keys["sdp"] = SDP.format(port=22000 + 2 * (call % 1000))
            keys["to-tag"] = "b"
        self.pending[cookie] = (time.perf_counter(), call, step)
        self.sock.send(cookie + b" " + encode(keys))  # type: ignore[arg-type]

    def wait(self) -> tuple[int, str]:
        data = self.sock.recv(65535)
        cookie, _, body = data.partition(b" ")
        started, call, step = self.pending.pop(cookie)
        self.rtts.append(time.perf_counter() - started)
        reply = decode(body)
        if not isinstance(reply, dict) or reply.get(b"result") != b"ok":
            raise SystemExit(f"{step} of call {call} failed: {reply!r}")
        return call, step

    def ping(self) -> None:
        self.sock.send(b"p " + encode({"command": "ping"}))
        self.sock.recv(100)


NEXT = {"offer": "answer", "answer": "delete"}


def run(calls: int, window: int, driver: Driver) -> float:
    started = time.perf_counter()
    issued = 0
    for _ in range(min(window, calls)):
        driver.send(issued, "offer")
        issued += 1
    done = 0
    while done < calls:
        call, step = driver.wait()
        if step in NEXT:
            driver.send(call, NEXT[step])
            continue
        done += 1
        if issued < calls:
            driver.send(issued, "offer")
            issued += 1
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--window", type=int, default=8, help="calls in flight")
    parser.add_argument("--rtpengine", action="store_true", help="drive rtpengine instead")
    args = parser.parse_args()
    ng_port = free_udp_port()
    proc = start_relay(ng_port, (40000, 40999), args.rtpengine)
    try:
        driver = Driver(ng_port)
        deadline = time.monotonic() + 10
        while True:
            try:
                driver.ping()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the relay did not answer ping") from None
                time.sleep(0.1)
        run(min(200, args.calls), args.window, driver)  # warm-up
        driver.rtts.clear()
        cpu0 = cpu_seconds(proc.pid)
        elapsed = run(args.calls, args.window, driver)
        cpu = cpu_seconds(proc.pid) - cpu0
        driver.sock.send(b"l " + encode({"command": "list"}))
        left = decode(driver.sock.recv(65535).partition(b" ")[2])
        rtts = sorted(driver.rtts)
        name = "rtpengine" if args.rtpengine else "callway relay"
        print(
            f"{name}: {args.calls} calls (offer+answer+delete), window {args.window}: "
            f"{args.calls / elapsed:.0f} calls/s, RTT median "
            f"{statistics.median(rtts) * 1e3:.2f} ms, p99 {rtts[int(len(rtts) * 0.99)] * 1e3:.2f}"
            f" ms, relay CPU {cpu / args.calls * 1000:.2f} s per 1000 calls; calls left "
            f"{left.get(b'calls') if isinstance(left, dict) else left!r}"
        )
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()

"""Network namespaces for tests: several hosts on one private LAN, on one machine.

Recipe from shared/PEERS.md (beside the repository).  A :class:`Lab` creates a *bridge
namespace* holding a Linux bridge, and one namespace per host, each joined to
the bridge by a veth pair (``eth0`` inside the host, ``p<n>`` on the bridge
side).  Addresses come from a private ``10.x.y.0/24`` that exists only inside
the namespaces the lab created; nothing is configured in the machine's own
namespace.  Names are unique per run (``cw<pid%1000><n>...``) and everything
is deleted on :meth:`Lab.close` (processes first, by their own PID), also when
the test failed.

Needs root (``ip netns add``): :func:`require_netns` skips a test otherwise,
or fails it under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.helpers.peers import in_ci

_COUNTER = itertools.count(1)


def require_netns() -> None:
    """Skip (or fail under CI=true) when network namespaces cannot be made here."""
    reason = ""
    if os.geteuid() != 0:
        reason = "network namespace tests need root (ip netns add)"
    elif shutil.which("ip") is None:
        reason = "iproute2 'ip' is not installed (apt-get install iproute2)"
    if reason:
        if in_ci():
            pytest.fail(reason + " and CI=true: these tests are mandatory in CI")
        pytest.skip(reason)


def ip(*args: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` in the machine's namespace (used only for netns/link plumbing)."""
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@dataclass
class Process:
    """A process started inside a namespace (``ip netns exec`` execs it: same PID)."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    handle: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, needle: str, timeout: float = 10.0) -> None:
        """Wait until ``needle`` appears in the process's output."""
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if not self.running:
                raise AssertionError(
                    f"{self.name} exited {self.proc.returncode} before {needle!r}:\n"
                    + self.log_text()[-4000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {needle!r} from {self.name} in {timeout} s:\n" + self.log_text()[-4000:]
                )
            time.sleep(0.05)


@dataclass
class Host:
    """One namespace on the lab's LAN."""

    lab: Lab
    ns: str
    address: str
    bridge_port: str
    interface: str = "eth0"
    processes: list[Process] = field(default_factory=list)

    def run(
        self, *argv: str, check: bool = True, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and wait for it."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, *argv], capture_output=True, text=True,
            timeout=timeout, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(
                f"[{self.ns}] {' '.join(argv)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    def start(
        self, name: str, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Process:
        """Start a background process in the namespace; output goes to a log file."""
        log_path = self.lab.workdir / f"{self.ns}-{name}.log"
        handle = log_path.open("wb")
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv], stdin=subprocess.DEVNULL, stdout=handle,
            stderr=subprocess.STDOUT, env=full_env, cwd=cwd or self.lab.workdir,
        )  # fmt: skip
        process = Process(name, list(argv), proc, log_path, handle)
        self.processes.append(process)
        return process

    def addresses(self) -> set[str]:
        """IPv4 addresses now on the host's interface."""
        out = self.run("ip", "-4", "-o", "addr", "show", "dev", self.interface, check=False)
        found = set()
        for line in out.stdout.splitlines():
            parts = line.split()
            if "inet" in parts:
                found.add(parts[parts.index("inet") + 1].split("/")[0])
        return found

    def has_address(self, address: str) -> bool:
        return address in self.addresses()

    def conntrack_timeouts(self, udp: int, udp_stream: int) -> dict[str, int]:
        """Shorten this namespace's conntrack UDP timeouts (NAT mappings expire sooner).

        ``nf_conntrack_udp_timeout`` (one-way or single-exchange flows) and
        ``_stream`` (flows seen both ways) are per network namespace on
        Linux >= 4.x once conntrack is in use there (the MASQUERADE rule).
        Returns the values read back.
        """
        base = "net.netfilter.nf_conntrack_udp_timeout"
        self.run("sysctl", "-qw", f"{base}={udp}", f"{base}_stream={udp_stream}")
        found = {}
        for key in (base, f"{base}_stream"):
            found[key] = int(self.run("sysctl", "-n", key).stdout.strip())
        return found

    def link(self, up: bool) -> None:
        """Take the host's LAN link down or up (its bridge-side end: as a pulled cable)."""
        self.lab.bridge_host_run("ip", "link", "set", self.bridge_port, "up" if up else "down")

    def stop_processes(self) -> None:
        for process in reversed(self.processes):
            process.stop()


class Lab:
    """A bridge namespace plus host namespaces on ``10.<a>.<b>.0/24``."""

    def __init__(self, workdir: Path, *, subnet: str | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        pid, number = os.getpid(), next(_COUNTER)
        self.prefix = f"cw{pid % 1000}x{number}"
        # 10.<200 + pid % 50>.<n>.0/24: private, and only inside our namespaces anyway.
        self.subnet = subnet or f"10.{200 + pid % 50}.{number % 250}"
        self.bridge_ns = f"{self.prefix}br"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._ports = 0
        self._create_ns(self.bridge_ns)
        self.bridge_host_run("ip", "link", "add", "br0", "type", "bridge")
        self.bridge_host_run("ip", "link", "set", "br0", "up")

    def _create_ns(self, name: str) -> None:
        ip("netns", "add", name)
        self._namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def address(self, last: int) -> str:
        """``10.a.b.<last>`` on the lab's LAN."""
        return f"{self.subnet}.{last}"

    def bridge_host_run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["ip", "netns", "exec", self.bridge_ns, *argv], capture_output=True, text=True,
            timeout=10, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"[{self.bridge_ns}] {' '.join(argv)}: {done.stderr.strip()}")
        return done

    def add_host(self, role: str, last: int) -> Host:
        """A namespace ``<prefix><role>`` with ``eth0`` = 10.a.b.<last>/24 on the bridge."""
        ns = f"{self.prefix}{role}"
        self._create_ns(ns)
        self._ports += 1
        port = f"p{self._ports}"
        ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
           "netns", self.bridge_ns)  # fmt: skip
        self.bridge_host_run("ip", "link", "set", port, "master", "br0")
        self.bridge_host_run("ip", "link", "set", port, "up")
        address = self.address(last)
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        host = Host(self, ns, address, port)
        self.hosts[role] = host
        return host

    def add_nat(
        self, role: str, last: int, *, lan: str = "192.168.1", phone_last: int = 10
    ) -> tuple[Host, Host]:
        """A NAT router ``<role>`` on the LAN (its WAN) and a phone namespace behind it.

        The router's ``eth0`` is 10.a.b.<last> on the lab's LAN; its ``lan0``
        is ``<lan>.1/24``, MASQUERADEd out of ``eth0`` (PEERS.md: a real NAT).
        The phone namespace ``<role>ph`` has ``eth0`` = ``<lan>.<phone_last>``
        and its default route through the router.  Two NATs may use the same
        private ``lan``: each lives in its own namespaces.
        """
        router = self.add_host(role, last)
        ns = f"{self.prefix}{role}ph"
        self._create_ns(ns)
        ip("link", "add", "lan0", "netns", router.ns, "type", "veth", "peer", "name", "eth0",
           "netns", ns)  # fmt: skip
        ip("-n", router.ns, "addr", "add", f"{lan}.1/24", "dev", "lan0")
        ip("-n", router.ns, "link", "set", "lan0", "up")
        router.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        router.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE")
        address = f"{lan}.{phone_last}"
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "route", "add", "default", "via", f"{lan}.1")
        phone = Host(self, ns, address, "")
        self.hosts[f"{role}ph"] = phone
        return router, phone

    def close(self) -> None:
        """Stop every process (by PID), then delete every namespace."""
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.stop_processes()
        for name in reversed(self._namespaces):
            ip("netns", "del", name, check=False)
        self._namespaces.clear()

    def logs(self) -> str:
        """Tail of every process log (for failure reports)."""
        parts = []
        for host in self.hosts.values():
            for process in host.processes:
                parts.append(f"--- {host.ns} {process.name} ---\n{process.log_text()[-3000:]}")
        return "\n".join(parts)


@contextlib.contextmanager
def lab(workdir: Path, roles: Sequence[tuple[str, int]] = ()) -> Iterator[Lab]:
    """A :class:`Lab` with ``roles`` (name, last octet) hosts, always torn down."""
    require_netns()
    the_lab = Lab(workdir)
    try:
        for role, last in roles:
            the_lab.add_host(role, last)
        yield the_lab
    finally:
        the_lab.close()

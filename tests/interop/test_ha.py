"""HA: two ``callway balancer`` nodes behind a keepalived VIP, in network namespaces.

Topology (one private /24 inside namespaces this module creates, see
``tests/helpers/netns.py``)::

    client .10 (sipp UAC, steady call rate to the VIP)
    lb1 .11   keepalived MASTER (prio 150) + callway balancer   } VIP .100
    lb2 .12   keepalived BACKUP (prio 100) + callway balancer   }
    pbx1 .21, pbx2 .22: sipp UAS "PBX nodes" answering calls (ha_uas.xml)

Each node's keepalived.conf is the output of ``callway keepalived -c DIR
--role master|backup`` (unicast peers, vrrp_script ``callway probe`` on the
node's own balancer at 127.0.0.1, interval 1, fall 2, rise 2, advert_int
0.2 s = VRRPv3).  Each balancer listens on the VIP (IP_FREEBIND: the backup
binds it before holding it), on its node address (its own probes of the PBX
nodes leave from there) and on 127.0.0.1 (the health check), with
``advertise = VIP`` so Record-Route carries the VIP.

The PBX nodes are sipp UAS scenarios, not ``callway pbx``: enough to answer
calls and to show that every BYE reaches the node that took the call.

Measured and printed: the client-visible outage (the longest gap between two
answered calls around the event) for a SIGKILLed master balancer, for the
master's link going down, and for the VIP returning to the repaired master
(preemption: lb1 has the higher priority; ``preempt_delay`` lets its balancer
re-probe the PBX nodes first, whose states went stale while it was cut off).
"""

from __future__ import annotations

import itertools
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.netns import Host, Lab, Process, require_netns
from tests.helpers.peers import SCENARIOS, require_binary

pytestmark = [pytest.mark.interop, pytest.mark.timeout(150)]

SIP_PORT = 5060
RATE = 10  # calls per second
CALL_MS = 4000  # each call lasts 4 s: ~40 calls are up at any time
ADVERT_INT = 0.2
# Measured here: 1.2-2.6 s after a crash (probe interval 1 s x fall 2, plus the
# wait for the next check), 0.7 s after a pulled cable (3 adverts of 0.2 s plus
# skew), about 0.1 s (no gap beyond the call interval) when the VIP returns.
# The bounds leave room for a loaded 2-core CI machine.
CRASH_OUTAGE_BOUND = 4.0
LINK_OUTAGE_BOUND = 1.5
RETURN_OUTAGE_BOUND = 1.5
# A repaired master takes the VIP back only after this long: its balancer has
# re-probed the PBX nodes by then (ping_interval 1 s), instead of answering
# 404 from destination states that went stale while it was cut off.
PREEMPT_DELAY = 2.0


@dataclass
class Pair:
    """The running HA system."""

    lab: Lab
    workdir: Path
    vip: str
    client: Host
    lbs: list[Host]
    pbxs: list[Host]
    balancers: list[Process | None] = field(default_factory=lambda: [None, None])
    uas: list[Process] = field(default_factory=list)

    # -- balancers --------------------------------------------------------------------------
    def config_dir(self, index: int) -> Path:
        return self.workdir / f"lb{index + 1}"

    def start_balancer(self, index: int) -> Process:
        host = self.lbs[index]
        process = host.start(
            f"balancer{len(host.processes)}", sys.executable, "-m", "callway",
            "balancer", "-c", str(self.config_dir(index)),
        )  # fmt: skip
        process.wait_log("callway balancer ready", timeout=15)
        self.balancers[index] = process
        return process

    def kill_balancer(self, index: int) -> None:
        process = self.balancers[index]
        assert process is not None
        process.kill()

    # -- the VIP ----------------------------------------------------------------------------
    def holders(self) -> list[int]:
        return [i for i, host in enumerate(self.lbs) if host.has_address(self.vip)]

    def wait_holder(self, index: int, timeout: float = 10.0) -> float:
        """Wait until node ``index`` alone holds the VIP; returns time.time() then."""
        deadline = time.monotonic() + timeout
        while True:
            holders = self.holders()
            if holders == [index]:
                return time.time()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"VIP on {holders}, expected only lb{index + 1}\n{self.lab.logs()}"
                )
            time.sleep(0.02)

    # -- the caller -------------------------------------------------------------------------
    def start_caller(self, name: str) -> Caller:
        sipp = shutil.which("sipp")
        assert sipp is not None
        log = self.workdir / f"{name}-actions.log"
        argv = [
            sipp, f"{self.vip}:{SIP_PORT}", "-sf", str(SCENARIOS / "ha_uac.xml"), "-s", "100",
            "-nostdin", "-i", self.client.address, "-p", str(SIP_PORT), "-t", "u1",
            "-r", str(RATE), "-d", str(CALL_MS), "-m", "2000", "-l", "200",
            "-timeout", "100s", "-trace_logs", "-log_file", str(log),
            "-trace_err", "-error_file", str(self.workdir / f"{name}-errors.log"),
        ]  # fmt: skip
        return Caller(self.client.start(name, *argv), log)

    def pbx_log(self, word: str) -> dict[str, float]:
        """Call-ID -> time for the ``word`` lines both PBX nodes logged."""
        found: dict[str, float] = {}
        for index in range(len(self.pbxs)):
            found.update(parse_actions(self.workdir / f"pbx{index + 1}-actions.log", word))
        return found


@dataclass
class Caller:
    process: Process
    log: Path

    def events(self, word: str) -> dict[str, float]:
        return parse_actions(self.log, word)

    def wait_answered_after(self, moment: float, timeout: float = 10.0) -> float:
        """Wait for a call answered after ``moment``; return its time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [t for t in self.events("ANSWERED").values() if t > moment]
            if later:
                return min(later)
            time.sleep(0.05)
        raise AssertionError(f"no call answered within {timeout} s after the event")

    def finish(self, timeout: float = 20.0) -> int:
        """SIGUSR1: sipp places no new call and exits once the calls in progress end."""
        self.process.signal(signal.SIGUSR1)
        try:
            return self.process.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.stop()
            message = "sipp did not finish its calls:\n" + self.process.log_text()
            raise AssertionError(message) from None


def parse_actions(path: Path, word: str) -> dict[str, float]:
    """``WORD call-id <date> <time> <epoch>`` lines of a sipp -log_file."""
    found: dict[str, float] = {}
    if not path.exists():
        return found
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == word:
            found.setdefault(parts[1], float(parts[-1]))
    return found


def outage(answered: dict[str, float], start: float, end: float) -> tuple[float, float, float]:
    """Longest gap between consecutive answered calls in [start, end]: (gap, from, to)."""
    times = sorted(t for t in answered.values() if start <= t <= end)
    best = (0.0, start, start)
    for before, after in itertools.pairwise(times):
        if after - before > best[0]:
            best = (after - before, before, after)
    return best


def write_node_config(directory: Path, *, vip: str, node: str, lbs: list[str],
                      pbxs: list[str], notify: Path) -> None:  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dispatcher.list").write_text(
        "# setid destination flags priority attributes\n"
        + "".join(f"1 sip:{pbx}:{SIP_PORT} 0 0 weight=50\n" for pbx in pbxs)
    )
    (directory / "callway.toml").write_text(
        f"""[balancer]
listen = ["udp:{vip}:{SIP_PORT}", "udp:{node}:{SIP_PORT}", "udp:127.0.0.1:{SIP_PORT}"]
list_file = "dispatcher.list"
algorithm = 4
advertise = "{vip}"
ping_interval = 1.0
ping_timeout = 0.5
probing_mode = 1

[ha]
vip = "{vip}"
prefix = 24
interface = "eth0"
virtual_router_id = 51
priority = 150
advert_int = {ADVERT_INT}
master_address = "{lbs[0]}"
backup_address = "{lbs[1]}"
check_uri = "sip:s@127.0.0.1:{SIP_PORT}"
probe_timeout = 0.5
interval = 1
fall = 2
rise = 2
notify = "{notify}"
preempt_delay = {PREEMPT_DELAY}
"""
    )


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    require_netns()
    keepalived = require_binary("keepalived")
    sipp = require_binary("sipp")
    workdir = tmp_path_factory.mktemp("ha")
    workdir.chmod(0o755)
    lab = Lab(workdir)
    try:
        client = lab.add_host("c", 10)
        lbs = [lab.add_host("lb1", 11), lab.add_host("lb2", 12)]
        pbxs = [lab.add_host("pbx1", 21), lab.add_host("pbx2", 22)]
        vip = lab.address(100)
        the_pair = Pair(lab, workdir, vip, client, lbs, pbxs)
        for index, pbx in enumerate(pbxs):
            name = f"pbx{index + 1}"
            the_pair.uas.append(pbx.start(
                "sipp-uas", sipp, "-sf", str(SCENARIOS / "ha_uas.xml"), "-nostdin",
                "-i", pbx.address, "-p", str(SIP_PORT), "-t", "u1", "-timeout", "140s",
                "-trace_logs", "-log_file", str(workdir / f"{name}-actions.log"),
                "-trace_err", "-error_file", str(workdir / f"{name}-errors.log"),
                "-max_recv_loops", "1000",
            ))  # fmt: skip
        # keepalived's notify hook: one line per state change, with the time.
        notify = workdir / "notify.sh"
        notify.write_text(f'#!/bin/sh\necho "$(date +%s.%N) $*" >> {workdir}/notify.log\n')
        notify.chmod(0o755)
        for index, host in enumerate(lbs):
            config = the_pair.config_dir(index)
            write_node_config(
                config, vip=vip, node=host.address, lbs=[h.address for h in lbs],
                pbxs=[h.address for h in pbxs], notify=notify,
            )  # fmt: skip
            role = "master" if index == 0 else "backup"
            conf = subprocess.run(
                [sys.executable, "-m", "callway", "keepalived", "-c", str(config), "--role", role],
                capture_output=True, text=True, check=True, timeout=30,
            ).stdout  # fmt: skip
            (config / "keepalived.conf").write_text(conf)
        for index in range(2):
            the_pair.start_balancer(index)
        for index, host in enumerate(lbs):
            config = the_pair.config_dir(index)
            host.start(
                "keepalived", keepalived, "-n", "-l", "-D", "-f", str(config / "keepalived.conf"),
                "-p", str(config / "keepalived.pid"), "-r", str(config / "vrrp.pid"),
            )  # fmt: skip
        the_pair.wait_holder(0, timeout=15)
        yield the_pair
    finally:
        lab.close()


def _report(pair: Pair) -> str:
    notify = pair.workdir / "notify.log"
    text = notify.read_text() if notify.exists() else ""
    return f"--- notify.log ---\n{text}\n{pair.lab.logs()}"


def _check_calls(pair: Pair, caller: Caller, code: int) -> dict[str, float]:
    """Every call was answered and ended, and every BYE reached a PBX node."""
    invites = caller.events("INVITE")
    answered = caller.events("ANSWERED")
    ended = caller.events("ENDED")
    byes_at_pbx = pair.pbx_log("BYE")
    assert invites, "the caller placed no call"
    missing = sorted(set(invites) - set(ended))
    assert not missing, f"{len(missing)} of {len(invites)} calls did not end with 200 to BYE"
    assert set(answered) == set(invites)
    lost = sorted(set(ended) - set(byes_at_pbx))
    assert not lost, f"{len(lost)} BYEs never reached a PBX node: {lost[:5]}"
    assert code == 0, f"sipp reported failed calls (exit {code})"
    return answered


def test_balancer_crash_moves_vip_and_it_returns(pair: Pair) -> None:
    """SIGKILL the master's balancer: the probe fails, the VIP moves, calls go on."""
    try:
        pair.wait_holder(0)
        caller = pair.start_caller("uac-crash")
        time.sleep(3)
        killed = time.time()
        pair.kill_balancer(0)
        moved = pair.wait_holder(1)
        caller.wait_answered_after(moved)
        time.sleep(1.5)
        # calls up before the crash, ended (BYE) after the VIP moved
        restarted = time.time()
        pair.start_balancer(0)
        returned = pair.wait_holder(0, timeout=10)
        caller.wait_answered_after(returned)
        time.sleep(1.5)
        code = caller.finish()
        answered = _check_calls(pair, caller, code)

        gap, last, first = outage(answered, killed - 1, restarted)
        print(
            f"\n[HA] balancer SIGKILL: VIP moved after {moved - killed:.2f} s; client-visible "
            f"outage {gap:.2f} s (last call answered {last - killed:+.2f} s, first after "
            f"{first - killed:+.2f} s, relative to the kill)"
        )
        back_gap, _, _ = outage(answered, returned - 1, time.time())
        print(
            f"[HA] lb1 balancer restarted: VIP back on lb1 after {returned - restarted:.2f} s "
            f"(start, rise 2, preempt_delay {PREEMPT_DELAY:g} s); longest gap between answered "
            f"calls {back_gap:.2f} s"
        )
        established = caller.events("ANSWERED")
        ended = caller.events("ENDED")
        across = [c for c, t in established.items() if t < killed and ended[c] > moved]
        print(f"[HA] {len(across)} calls set up through lb1 were ended by BYE through lb2")
        assert across, "no call spanned the failover"
        assert gap < CRASH_OUTAGE_BOUND, f"outage {gap:.2f} s"
        assert back_gap < RETURN_OUTAGE_BOUND, f"switch-back gap {back_gap:.2f} s"
    except BaseException:
        print(_report(pair))
        raise


def test_master_link_down_moves_vip_and_it_returns(pair: Pair) -> None:
    """Pull the master's cable: the backup misses 3 adverts and takes the VIP."""
    try:
        pair.wait_holder(0)
        caller = pair.start_caller("uac-link")
        time.sleep(3)
        down = time.time()
        pair.lbs[0].link(up=False)
        moved = pair.wait_holder(1)
        caller.wait_answered_after(moved)
        time.sleep(1.5)
        up = time.time()
        pair.lbs[0].link(up=True)
        returned = pair.wait_holder(0, timeout=10)
        caller.wait_answered_after(returned)
        time.sleep(1.5)
        code = caller.finish()
        answered = _check_calls(pair, caller, code)

        gap, last, first = outage(answered, down - 1, up)
        print(
            f"\n[HA] master link down: VIP on lb2 after {moved - down:.2f} s; client-visible "
            f"outage {gap:.2f} s (last answered {last - down:+.2f} s, first after "
            f"{first - down:+.2f} s)"
        )
        back_gap, _, _ = outage(answered, up - 1, time.time())
        print(
            f"[HA] link up: VIP back on lb1 after {returned - up:.2f} s; longest gap between "
            f"answered calls {back_gap:.2f} s"
        )
        established = caller.events("ANSWERED")
        ended = caller.events("ENDED")
        across = [c for c, t in established.items() if t < down and ended[c] > moved]
        print(f"[HA] {len(across)} calls set up through lb1 were ended by BYE through lb2")
        assert across, "no call spanned the failover"
        assert gap < LINK_OUTAGE_BOUND, f"outage {gap:.2f} s"
        assert back_gap < RETURN_OUTAGE_BOUND, f"switch-back gap {back_gap:.2f} s"
    except BaseException:
        print(_report(pair))
        raise

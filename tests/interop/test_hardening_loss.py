"""Bad networks: 100 calls through ``callway pbx`` with 10% packet loss both ways.

Topology (namespaces this test creates and deletes, ``tests/helpers/netns.py``)::

    uac .10 (sipp, caller 8005)  ─┐
    pbx .1  (callway pbx)        ─┼─ bridge
    uas .20 (sipp, callee 8006)  ─┘

``iptables -m statistic --mode random --probability 0.1 -j DROP`` on the PBX
host's INPUT and OUTPUT (``tc netem`` is not in this kernel, PEERS.md):
every SIP message to or from the PBX, on both call legs, is lost with
probability 0.1.  The callee registers through the same loss, then sipp
places 100 short calls (INVITE, 401, INVITE with credentials, 180, 200,
ACK, BYE, 200) at a moderate rate.  RFC 3261's retransmissions (Timers A,
E, G and the 2xx retransmission of the UAS core) on both sides must
recover every lost message: zero failed calls.  The test prints the calls,
the retransmissions sipp counted and the packets iptables dropped.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.netns import Host, lab
from tests.helpers.pbx_process import READY_MARKER, write_config
from tests.helpers.peers import SCENARIOS, require_binary

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

SIP_PORT = 5060
LOSS = 0.10
CALLS = 100
RATE = 10  # calls per second
CALL_MS = 200  # talk time between ACK and BYE
SIPP_TIMEOUT = 90  # seconds; loss makes a few calls take several T1 back-offs


def _sipp(host: Host, pbx: str, scenario: str, tmp_path: Path, *args: str) -> list[str]:
    name = Path(scenario).stem
    return [
        "sipp", f"{pbx}:{SIP_PORT}", "-sf", str(SCENARIOS / scenario), "-nostdin",
        "-i", host.address, "-t", "u1", "-timeout", f"{SIPP_TIMEOUT}s", "-timeout_error",
        "-trace_err", "-error_file", str(tmp_path / f"{host.ns}-{name}-errors.log"),
        "-trace_msg", "-message_file", str(tmp_path / f"{host.ns}-{name}-messages.log"), *args,
    ]  # fmt: skip


def _drop_rules(host: Host, action: str) -> None:
    """Lose LOSS of what ``host`` receives (INPUT: the sender sees no error, as on a wire)."""
    host.run(
        "iptables", action, "INPUT", "-i", host.interface, "-m", "statistic",
        "--mode", "random", "--probability", str(LOSS), "-j", "DROP",
    )  # fmt: skip


def _counted(host: Host) -> tuple[int, int]:
    """(packets dropped, packets received) on ``host``'s INPUT since the rule was added."""
    out = host.run("iptables", "-L", "INPUT", "-v", "-n", "-x").stdout
    dropped = sum(
        int(line.split()[0]) for line in out.splitlines() if line.split()[2:3] == ["DROP"]
    )
    received = int(host.run("cat", f"/sys/class/net/{host.interface}/statistics/rx_packets").stdout)
    return dropped, received


def _summary(stdout: str) -> dict[str, int]:
    """Successful/failed calls and retransmissions from sipp's final screen."""
    found: dict[str, int] = {}
    for label in ("Successful call", "Failed call"):
        match = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", stdout)
        if match:
            found[label] = int(match[-1])
    # Message lines: "INVITE ---------->  100  3 ..." or "----------> INVITE  100  3 ...":
    # the two numbers after the arrow and the message name are messages and retransmissions.
    retrans = 0
    for line in stdout.splitlines():
        tokens = line.split()
        arrows = [i for i, t in enumerate(tokens) if re.fullmatch(r"-{5,}>|<-{5,}", t)]
        if not arrows:
            continue
        rest = tokens[2:] if arrows[0] == 0 else tokens[arrows[0] + 1 :]
        if len(rest) >= 2 and rest[1].isdigit():
            retrans += int(rest[1])
    found["retransmissions"] = retrans
    return found


def test_100_calls_complete_with_10_percent_loss(tmp_path: Path) -> None:
    require_binary("sipp")
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed (apt-get install iptables)")
    with lab(tmp_path / "lab", [("pbx", 1), ("uac", 10), ("uas", 20)]) as net:
        pbx_host, uac, uas = net.hosts["pbx"], net.hosts["uac"], net.hosts["uas"]
        config = tmp_path / "pbx"
        write_config(
            config, SIP_PORT, udp=False, tcp=False,
            extra_pjsip=f"[transport-udp]\ntype=transport\nprotocol=udp\n"
                        f"bind={pbx_host.address}:{SIP_PORT}\n",
        )  # fmt: skip
        pbx = pbx_host.start("pbx", sys.executable, "-m", "callway", "pbx", "-c", str(config))
        pbx.wait_log(READY_MARKER, timeout=15)
        hosts = (pbx_host, uac, uas)
        for host in hosts:
            _drop_rules(host, "-A")
        before = {host.ns: _counted(host)[1] for host in hosts}

        register = uas.run(
            *_sipp(uas, pbx_host.address, "register_auth.xml", tmp_path, "-p", str(SIP_PORT),
                   "-s", "8006", "-au", "8006", "-ap", "8006", "-m", "1"),
            check=False, timeout=SIPP_TIMEOUT + 10,
        )  # fmt: skip
        assert register.returncode == 0, register.stdout[-3000:] + register.stderr[-2000:]
        callee = uas.start(
            "sipp-uas",
            *_sipp(uas, pbx_host.address, "hardening_loss_uas.xml", tmp_path, "-p", str(SIP_PORT),
                   "-s", "8006", "-m", str(CALLS)),
        )  # fmt: skip
        time.sleep(0.5)
        started = time.monotonic()
        caller = uac.run(
            *_sipp(uac, pbx_host.address, "hardening_loss_uac.xml", tmp_path, "-p", str(SIP_PORT),
                   "-s", "8006", "-au", "8005", "-ap", "8005", "-m", str(CALLS),
                   "-r", str(RATE), "-l", str(CALLS), "-d", str(CALL_MS)),
            check=False, timeout=SIPP_TIMEOUT + 10,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        callee.proc.wait(SIPP_TIMEOUT)
        counted = {host.ns: _counted(host) for host in hosts}
        lost = {
            host: (dropped, received - before[host])
            for host, (dropped, received) in counted.items()
        }
        caller_stats, callee_stats = _summary(caller.stdout), _summary(callee.log_text())
        to_pbx, from_pbx = (
            lost[pbx_host.ns],
            (lost[uac.ns][0] + lost[uas.ns][0], lost[uac.ns][1] + lost[uas.ns][1]),
        )
        print(
            f"\n{CALLS} calls at {RATE}/s with {LOSS:.0%} loss each way: {elapsed:.1f} s; "
            f"caller {caller_stats}, callee {callee_stats}; dropped {to_pbx[0]} of "
            f"{to_pbx[1]} packets to the PBX and {from_pbx[0]} of {from_pbx[1]} from it"
        )
        logs = f"{caller.stdout[-6000:]}\n{net.logs()}"
        assert caller.returncode == 0, logs
        assert callee.proc.returncode == 0, logs
        assert caller_stats.get("Successful call") == CALLS, logs
        assert caller_stats.get("Failed call") == 0, logs
        assert callee_stats.get("Successful call") == CALLS, logs
        assert to_pbx[0] > 0 and from_pbx[0] > 0, lost
        assert pbx.running, net.logs()
        # Every call ended by its BYE (none by the PBX giving up on a lost ACK).
        deadline = time.monotonic() + 10
        while pbx.log_text().count("ended: ANSWERED") < CALLS and time.monotonic() < deadline:
            time.sleep(0.1)
        log = pbx.log_text()
        assert log.count("ended: ANSWERED") == CALLS, log[-6000:]
        assert "no ACK for the 2xx" not in log, log[-6000:]

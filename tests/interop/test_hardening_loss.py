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
        "-trace_err", "-error_file", str(tmp_path / f"{host.ns}-{name}-errors.log"), *args,
    ]  # fmt: skip


def _drop_rules(host: Host, action: str) -> None:
    for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
        host.run(
            "iptables", action, chain, flag, host.interface, "-m", "statistic",
            "--mode", "random", "--probability", str(LOSS), "-j", "DROP",
        )  # fmt: skip


def _dropped(host: Host) -> dict[str, int]:
    """Packets each DROP rule took, by chain."""
    counts: dict[str, int] = {}
    for chain in ("INPUT", "OUTPUT"):
        out = host.run("iptables", "-L", chain, "-v", "-n", "-x").stdout
        counts[chain] = sum(
            int(line.split()[0]) for line in out.splitlines() if "DROP" in line.split()[2:3]
        )
    return counts


def _interface_packets(host: Host) -> tuple[int, int]:
    """(received, sent) packets on the host's LAN interface."""
    text = host.run("cat", f"/sys/class/net/{host.interface}/statistics/rx_packets").stdout
    sent = host.run("cat", f"/sys/class/net/{host.interface}/statistics/tx_packets").stdout
    return int(text), int(sent)


def _summary(stdout: str) -> dict[str, int]:
    """Successful/failed calls and retransmissions from sipp's final screen."""
    found: dict[str, int] = {}
    for label in ("Successful call", "Failed call"):
        match = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", stdout)
        if match:
            found[label] = int(match[-1])
    # Message lines: "  INVITE ---------->  101  3  0" (messages, retransmissions, ...).
    retrans = 0
    for line in stdout.splitlines():
        match = re.search(r"(?:-->|<--|---)\s*[A-Z0-9]*\s+(\d+)\s+(\d+)", line)
        if match and ("---" in line or "<" in line or ">" in line):
            retrans += int(match.group(2))
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
        _drop_rules(pbx_host, "-A")
        before = _interface_packets(pbx_host)

        register = uas.run(
            *_sipp(uas, pbx_host.address, "register_auth.xml", tmp_path, "-p", str(SIP_PORT),
                   "-s", "8006", "-au", "8006", "-ap", "8006", "-m", "1"),
            check=False, timeout=SIPP_TIMEOUT + 10,
        )  # fmt: skip
        assert register.returncode == 0, register.stdout[-3000:] + register.stderr[-2000:]
        callee = uas.start(
            "sipp-uas",
            *_sipp(uas, pbx_host.address, "call_uas.xml", tmp_path, "-p", str(SIP_PORT),
                   "-s", "8006", "-m", str(CALLS)),
        )  # fmt: skip
        time.sleep(0.5)
        started = time.monotonic()
        caller = uac.run(
            *_sipp(uac, pbx_host.address, "call_uac.xml", tmp_path, "-p", str(SIP_PORT),
                   "-s", "8006", "-au", "8005", "-ap", "8005", "-m", str(CALLS),
                   "-r", str(RATE), "-l", str(CALLS), "-d", str(CALL_MS)),
            check=False, timeout=SIPP_TIMEOUT + 10,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        callee.proc.wait(SIPP_TIMEOUT)
        dropped = _dropped(pbx_host)
        after = _interface_packets(pbx_host)
        _drop_rules(pbx_host, "-D")
        caller_stats, callee_stats = _summary(caller.stdout), _summary(callee.log_text())
        received, sent = after[0] - before[0], after[1] - before[1]
        print(
            f"\n{CALLS} calls at {RATE}/s with {LOSS:.0%} loss each way: {elapsed:.1f} s; "
            f"caller {caller_stats}, callee {callee_stats}; PBX interface: "
            f"{dropped['INPUT']} of {received} incoming and {dropped['OUTPUT']} of "
            f"{sent + dropped['OUTPUT']} outgoing packets dropped"
        )
        logs = f"{caller.stdout[-6000:]}\n{net.logs()}"
        assert caller.returncode == 0, logs
        assert callee.proc.returncode == 0, logs
        assert caller_stats.get("Successful call") == CALLS, logs
        assert caller_stats.get("Failed call") == 0, logs
        assert callee_stats.get("Successful call") == CALLS, logs
        assert dropped["INPUT"] > 0 and dropped["OUTPUT"] > 0, dropped
        assert pbx.running, net.logs()

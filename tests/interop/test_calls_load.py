"""2,000 short calls through ``callway pbx`` leave no channel, dialog or RTP port behind.

sipp 8005 calls a sipp UAS registered as 8006 at a moderate rate; each call
is challenged (401), answered, held for 50 ms and hung up by the caller.
Afterwards the PBX is sent SIGUSR1 and prints one line of live counts::

    stats: channels=0 dialogs=0 invites=0 client_requests=0 rtp_pairs=0 tasks=0 transactions=N

Transactions are not required to be zero: RFC 3261 keeps completed server
transactions for Timer J/K (up to 64*T1) to absorb retransmissions.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.interop.test_calls_sipp import callee, caller, ok

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

CALLS = 2000
RATE = 100  # calls per second
STATS = re.compile(r"stats: (.*)$", re.MULTILINE)


def pbx_stats(pbx: PbxProcess, timeout: float = 5.0) -> dict[str, int]:
    """Send SIGUSR1 and parse the ``stats:`` line it logs."""
    assert pbx.proc is not None
    before = len(STATS.findall(pbx.stderr_text()))
    pbx.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = STATS.findall(pbx.stderr_text())
        if len(lines) > before:
            return {k: int(v) for k, v in (item.split("=") for item in lines[-1].split())}
        time.sleep(0.05)
    raise AssertionError("no stats line after SIGUSR1")


def wait_idle(pbx: PbxProcess, timeout: float = 10.0) -> dict[str, int]:
    """Stats once every call resource is released (or the last stats seen)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = pbx_stats(pbx)
        busy = {k: v for k, v in stats.items() if k != "transactions" and v}
        if not busy or time.monotonic() > deadline:
            return stats
        time.sleep(0.5)


def test_2000_calls_leave_nothing_behind(pbx: PbxProcess, tmp_path: Path) -> None:
    idle = pbx_stats(pbx)
    assert idle["channels"] == idle["rtp_pairs"] == 0, idle
    with callee(pbx, "call_uas.xml", tmp_path, calls=CALLS, timeout=60) as uas:
        uac = caller(
            pbx, "call_uac.xml", tmp_path, calls=CALLS, timeout=60,
            extra=["-r", str(RATE), "-rp", "1000", "-d", "50"],
        )  # fmt: skip
        b = uas.result()
    ok(uac)
    ok(b)
    stats = wait_idle(pbx)
    print(stats)
    leaks = {k: v for k, v in stats.items() if k != "transactions" and v}
    assert not leaks, f"left behind after {CALLS} calls: {stats}"
    assert "channel failed" not in pbx.stderr_text()

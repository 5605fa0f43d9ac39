"""2,000 short calls through ``callway pbx`` leave no channel, dialog or RTP port behind.

sipp 8005 calls a sipp UAS registered as 8006 at a moderate rate; each call
is challenged (401), answered, held for 50 ms and hung up by the caller.
Afterwards the PBX is sent SIGUSR1 and prints one line of live counts::

    stats: channels=0 dialogs=0 invites=0 client_requests=0 rtp_pairs=0 tasks=0
           transactions=N resting_kib=K

Transactions (and the KiB their records take) are not required to be zero:
RFC 3261 keeps finished transactions for Timers J, K, L and M (up to 64*T1)
to absorb retransmissions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.interop.test_calls_sipp import RESTING, callee, caller, ok, pbx_stats, wait_idle

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

CALLS = 2000
RATE = 100  # calls per second


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
    leaks = {k: v for k, v in stats.items() if k not in RESTING and v}
    assert not leaks, f"left behind after {CALLS} calls: {stats}"
    assert "channel failed" not in pbx.stderr_text()

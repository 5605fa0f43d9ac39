"""Call flows through ``callway pbx`` driven by sipp, checking the exact responses.

The caller (8005) runs a ``call_uac*.xml`` scenario that answers the PBX's
401 challenge to the INVITE, as Asterisk's chan_pjsip issues one; the callee
(8006) first registers with ``register_auth.xml`` and then runs a
``call_uas*.xml`` scenario from the same port.  Each test compares the start
lines each side received with what RFC 3261 and Asterisk prescribe.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import SippResult, require_binary, run_sipp
from tests.helpers.ports import free_port_pair_block
from tests.interop.conftest import PbxFactory

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

NOANSWER_EXTENSIONS = """\
[from-external]
exten => _80XX,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN},3)
"""


DEMO_WITH_HANGUP = """\
[from-external]
exten => _80XX,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN})
 same => n,Hangup()
"""


def register(pbx: PbxProcess, user: str, port: int, tmp_path: Path) -> None:
    result = run_sipp(
        "register_auth.xml",
        f"127.0.0.1:{pbx.sip_port}",
        local_port=port,
        service=user,
        extra_args=["-au", user, "-ap", user],
        timeout=10,
        trace_dir=tmp_path / f"sipp-register-{user}",
    )
    assert result.returncode == 0, result.describe()
    assert pbx.wait_contacts(user), f"{user} not registered"


@contextmanager
def callee(
    pbx: PbxProcess,
    scenario: str,
    tmp_path: Path,
    *,
    user: str = "8006",
    extra: list[str] | None = None,
    calls: int = 1,
    timeout: float = 20,
) -> Iterator[Future[SippResult]]:
    """Register ``user`` and run ``scenario`` as its UAS in the background."""
    require_binary("sipp")
    port = free_port_pair_block(1)
    register(pbx, user, port, tmp_path)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            run_sipp,
            scenario,
            f"127.0.0.1:{pbx.sip_port}",
            local_port=port,
            service=user,
            extra_args=extra or [],
            calls=calls,
            timeout=timeout,
            trace_dir=tmp_path / f"sipp-{scenario.removesuffix('.xml')}",
        )
        time.sleep(0.3)  # let sipp bind its port before the INVITE comes
        yield future


def caller(
    pbx: PbxProcess,
    scenario: str,
    tmp_path: Path,
    *,
    callee_user: str = "8006",
    extra: list[str] | None = None,
    calls: int = 1,
    timeout: float = 20,
) -> SippResult:
    require_binary("sipp")
    return run_sipp(
        scenario,
        f"127.0.0.1:{pbx.sip_port}",
        service=callee_user,
        extra_args=[
            "-au",
            "8005",
            "-ap",
            "8005",
            *(extra or []),
        ],
        calls=calls,
        timeout=timeout,
        trace_dir=tmp_path / f"sipp-{scenario.removesuffix('.xml')}",
    )


def finals(result: SippResult) -> list[str]:
    """What sipp received, as ``start line (CSeq method)``.

    100 Trying and retransmissions (same start line, CSeq and Via branch) are
    left out.
    """
    lines: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for block in re.split(r"^-{10,}.*$", result.messages(), flags=re.MULTILINE):
        head, _, rest = block.strip("\n").partition("\n")
        if "message received" not in head:
            continue
        message = rest.lstrip("\n")
        start = message.split("\n", 1)[0].strip()
        cseq = _header(message, "CSeq")
        key = (start, cseq, _header(message, "Via"))
        if start.startswith("SIP/2.0 100") or key in seen:
            continue
        seen.add(key)
        lines.append(f"{start} ({cseq.split()[-1] if cseq else '?'})")
    return lines


def _header(message: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.*)$", message, re.MULTILINE | re.IGNORECASE)
    return match.group(1).strip() if match else ""


def methods(result: SippResult) -> list[str]:
    """The methods of the requests sipp received."""
    return [line.split()[0] for line in finals(result) if not line.startswith("SIP/")]


def cdrs(pbx: PbxProcess, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Rows of the PBX's ``cdr`` table once there are ``count`` (it flushes every 0.5 s)."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error, FileNotFoundError):
            rows = [dict(r) for r in pbx.query("SELECT * FROM cdr ORDER BY id")]
        if len(rows) >= count:
            break
        time.sleep(0.1)
    return rows


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
        busy = {k: v for k, v in stats.items() if k not in RESTING and v}
        if not busy or time.monotonic() > deadline:
            return stats
        time.sleep(0.5)


def assert_idle(pbx: PbxProcess) -> None:
    """Every channel, dialog and RTP port of the PBX was released (SIGUSR1 stats)."""
    stats = wait_idle(pbx)
    leaks = {k: v for k, v in stats.items() if k not in RESTING and v}
    assert not leaks, f"left behind: {stats}\n{pbx.stderr_text()[-4000:]}"


def ok(result: SippResult) -> None:
    assert result.returncode == 0, result.describe()


R401 = "SIP/2.0 401 Unauthorized (INVITE)"
R180 = "SIP/2.0 180 Ringing (INVITE)"
R200 = "SIP/2.0 200 OK (INVITE)"
BYE_OK = "SIP/2.0 200 OK (BYE)"
STATS = re.compile(r"stats: (.*)$", re.MULTILINE)
# Kept for RFC 3261's timers (up to 64*T1 after a call), not held by calls.
RESTING = ("transactions", "resting_kib")


def test_answered_call_caller_hangs_up(pbx: PbxProcess, tmp_path: Path) -> None:
    with callee(pbx, "call_uas.xml", tmp_path) as uas:
        uac = caller(pbx, "call_uac.xml", tmp_path, extra=["-d", "500"])
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac) == [R401, R180, R200, BYE_OK], uac.describe()
    assert methods(b) == ["INVITE", "ACK", "BYE"], b.describe()
    (cdr,) = cdrs(pbx)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("8005", "8006", "ANSWERED")
    assert cdr["start"] <= cdr["answer"] <= cdr["end"], cdr
    assert cdr["duration"] >= cdr["billsec"] >= 0, cdr
    # Asterisk's other CDR columns: the seed's _80XX runs Dial(PJSIP/${EXTEN}).
    assert cdr["channel"] == f"PJSIP/8005-{cdr['uniqueid']}", cdr
    assert cdr["dstchannel"].startswith("PJSIP/8006-"), cdr
    assert cdr["dstchannel"] != cdr["channel"].replace("8005", "8006"), cdr  # a uid of its own
    assert (cdr["lastapp"], cdr["lastdata"], cdr["dcontext"]) == (
        "Dial", "PJSIP/8006", "from-external"
    ), cdr
    assert (cdr["clid"], cdr["accountcode"]) == ('"8005" <8005>', ""), cdr
    assert_idle(pbx)


def test_answered_call_callee_hangs_up(pbx: PbxProcess, tmp_path: Path) -> None:
    with callee(pbx, "call_uas_bye.xml", tmp_path, extra=["-d", "500"]) as uas:
        uac = caller(pbx, "call_uac_callee_bye.xml", tmp_path)
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac)[:3] == [R401, R180, R200], uac.describe()
    assert methods(uac) == ["BYE"], uac.describe()
    assert finals(b) == [finals(b)[0], finals(b)[1], BYE_OK], b.describe()
    assert methods(b) == ["INVITE", "ACK"], b.describe()
    assert_idle(pbx)


def test_cancel_before_answer(pbx: PbxProcess, tmp_path: Path) -> None:
    with callee(pbx, "call_uas_cancelled.xml", tmp_path) as uas:
        uac = caller(pbx, "call_uac_cancel.xml", tmp_path)
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac) == [
        R401, R180, "SIP/2.0 200 OK (CANCEL)", "SIP/2.0 487 Request Terminated (INVITE)"
    ], uac.describe()  # fmt: skip
    assert methods(b) == ["INVITE", "CANCEL", "ACK"], b.describe()
    assert_idle(pbx)


def test_busy_callee_gives_486(pbx: PbxProcess, tmp_path: Path) -> None:
    with callee(pbx, "call_uas_busy.xml", tmp_path) as uas:
        uac = caller(pbx, "call_uac_rejected.xml", tmp_path)
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac) == [R401, "SIP/2.0 486 Busy Here (INVITE)"], uac.describe()
    assert methods(b) == ["INVITE", "ACK"], b.describe()
    (cdr,) = cdrs(pbx)
    assert (cdr["disposition"], cdr["answer"], cdr["billsec"]) == ("BUSY", None, 0), cdr
    assert_idle(pbx)


def test_no_answer_after_dial_timeout_gives_480(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    pbx = pbx_factory(extensions=NOANSWER_EXTENSIONS)
    with callee(pbx, "call_uas_cancelled.xml", tmp_path) as uas:
        started = time.monotonic()
        uac = caller(pbx, "call_uac_rejected.xml", tmp_path)
        elapsed = time.monotonic() - started
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac) == [R401, R180, "SIP/2.0 480 Temporarily Unavailable (INVITE)"], (
        uac.describe()
    )
    assert 2.5 < elapsed < 6, elapsed
    assert methods(b) == ["INVITE", "CANCEL", "ACK"], b.describe()
    (cdr,) = cdrs(pbx)
    assert (cdr["disposition"], cdr["answer"]) == ("NO ANSWER", None), cdr
    assert_idle(pbx)


def test_unknown_extension_gives_404(pbx: PbxProcess, tmp_path: Path) -> None:
    uac = caller(pbx, "call_uac_rejected.xml", tmp_path, callee_user="9999")
    ok(uac)
    assert finals(uac) == [R401, "SIP/2.0 404 Not Found (INVITE)"], uac.describe()
    assert_idle(pbx)


def test_unregistered_target_gives_480(pbx: PbxProcess, tmp_path: Path) -> None:
    """8006 has no contact: Dial ends CHANUNAVAIL and the seed dialplan has no next step.

    Asterisk's autofallthrough indicates congestion then, which chan_pjsip
    would send as 503; callway answers 480 Temporarily Unavailable (RFC 3261
    §21.4.18) instead, so that a balancer in front does not take a 5xx for a
    failed PBX node and fail over.
    """
    uac = caller(pbx, "call_uac_rejected.xml", tmp_path)
    ok(uac)
    assert finals(uac) == [R401, "SIP/2.0 480 Temporarily Unavailable (INVITE)"], uac.describe()
    assert_idle(pbx)


def test_unregistered_target_with_hangup_step_gives_480(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    """An explicit ``Hangup()`` after Dial ends with the Dial's cause (20: 480)."""
    pbx = pbx_factory(extensions=DEMO_WITH_HANGUP)
    uac = caller(pbx, "call_uac_rejected.xml", tmp_path)
    ok(uac)
    assert finals(uac) == [R401, "SIP/2.0 480 Temporarily Unavailable (INVITE)"], uac.describe()
    assert_idle(pbx)


def test_codec_mismatch_gives_488(pbx: PbxProcess, tmp_path: Path) -> None:
    uac = caller(pbx, "call_uac_rejected_pcma.xml", tmp_path)
    ok(uac)
    assert finals(uac) == [R401, "SIP/2.0 488 Not Acceptable Here (INVITE)"], uac.describe()
    assert_idle(pbx)


def test_hold_and_resume_reinvite(pbx: PbxProcess, tmp_path: Path) -> None:
    with callee(pbx, "call_uas_hold.xml", tmp_path) as uas:
        uac = caller(pbx, "call_uac_hold.xml", tmp_path)
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac) == [R401, R180, R200, R200, R200, BYE_OK], uac.describe()
    assert methods(b) == ["INVITE", "ACK", "INVITE", "ACK", "INVITE", "ACK", "BYE"], b.describe()
    assert_idle(pbx)


def test_reinvite_glare_gets_491_and_retry_succeeds(pbx: PbxProcess, tmp_path: Path) -> None:
    with callee(pbx, "call_uas_glare.xml", tmp_path) as uas:
        uac = caller(pbx, "call_uac_glare.xml", tmp_path)
        b = uas.result()
    ok(uac)
    ok(b)
    assert finals(uac) == [
        R401, R180, R200, "SIP/2.0 491 Request Pending (INVITE)", R200, BYE_OK
    ], uac.describe()  # fmt: skip
    assert "SIP/2.0 491 Request Pending (INVITE)" in finals(b), b.describe()
    assert methods(b) == ["INVITE", "ACK", "INVITE", "ACK", "INVITE", "ACK", "BYE"], b.describe()
    assert_idle(pbx)

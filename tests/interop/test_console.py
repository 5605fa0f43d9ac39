"""``callway console``: endpoints, contacts and a live log of a running PBX."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import require_binary, run_sipp
from tests.helpers.ports import free_port_pair_block

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


def console(pbx: PbxProcess, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callway", "console", "-c", str(pbx.config_dir), "-x", command],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip


def register(pbx: PbxProcess, user: str, tmp_path: Path) -> None:
    result = run_sipp(
        "register_auth.xml", f"127.0.0.1:{pbx.sip_port}", local_port=free_port_pair_block(1),
        service=user, extra_args=["-au", user, "-ap", user], timeout=10,
        trace_dir=tmp_path / f"sipp-{user}",
    )  # fmt: skip
    assert result.returncode == 0, result.describe()


def test_console_shows_endpoints_and_contacts(pbx: PbxProcess, tmp_path: Path) -> None:
    require_binary("sipp")
    endpoints = console(pbx, "pjsip show endpoints")
    assert endpoints.returncode == 0, endpoints.stderr
    assert "8005" in endpoints.stdout and "Unavailable" in endpoints.stdout
    register(pbx, "8005", tmp_path)
    contacts = console(pbx, "pjsip show contacts")
    assert "sip:8005@" in contacts.stdout, contacts.stdout
    after = console(pbx, "pjsip show endpoints")
    line = next(row for row in after.stdout.splitlines() if row.startswith("8005"))
    assert "Available" in line and "Unavailable" not in line
    unknown = console(pbx, "frobnicate")
    assert unknown.returncode == 1 and "pjsip show contacts" in unknown.stdout


def test_console_live_log(pbx: PbxProcess, tmp_path: Path) -> None:
    require_binary("sipp")
    proc = subprocess.Popen(
        [sys.executable, "-m", "callway", "console", "-c", str(pbx.config_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        register(pbx, "8006", tmp_path)
        dial_unknown(pbx, tmp_path)
        assert proc.stdin is not None
        proc.stdin.write("core show channels\n")
        proc.stdin.flush()
        time.sleep(1.0)
        proc.stdin.write("exit\n")
        proc.stdin.flush()
        output, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Connected to callway" in output
    assert "0 objects found" in output  # the channels command answered
    assert "8006" in output  # the registration showed up in the live log
    # The dialplan's verbose lines, as asterisk -rvvv shows them, reach the console...
    assert 'Executing [8099@from-external:1] NoOp("PJSIP/8005-' in output, output[-3000:]
    # ...and not the node's own log, which keeps Asterisk's log-file level.
    assert "Executing [" not in pbx.stderr_text()


def dial_unknown(pbx: PbxProcess, tmp_path: Path) -> None:
    """8005 calls 8099 (matches _80XX, not registered): the dialplan runs, the call fails."""
    result = run_sipp(
        "call_uac_rejected.xml", f"127.0.0.1:{pbx.sip_port}", service="8099",
        extra_args=["-au", "8005", "-ap", "8005"], timeout=15, trace_dir=tmp_path / "sipp-call",
    )  # fmt: skip
    assert result.returncode == 0, result.describe()


def test_console_without_node(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "callway", "console", "--socket", str(tmp_path / "x.ctl"),
         "-x", "core show version"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 2 and "no control socket" in result.stderr

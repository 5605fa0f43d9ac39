"""``callway probe``: sipsak's exit codes against real servers (keepalived's health check)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import require_binary
from tests.helpers.ports import free_sip_port

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callway", "probe", *args],
        capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_probe_200_over_udp_and_tcp(pbx: PbxProcess) -> None:
    udp = probe(f"sip:s@127.0.0.1:{pbx.sip_port}")
    assert udp.returncode == 0, udp.stdout + udp.stderr
    assert "200" in udp.stdout
    tcp = probe(f"sip:s@127.0.0.1:{pbx.sip_port};transport=tcp")
    assert tcp.returncode == 0, tcp.stdout + tcp.stderr
    nagios = probe("--nagios", f"sip:s@127.0.0.1:{pbx.sip_port}")
    assert nagios.returncode == 0 and nagios.stdout.startswith("SIP OK")


def test_probe_timeout_and_refused_exit_3() -> None:
    port = free_sip_port()
    started = time.monotonic()
    silent = probe("-t", "0.6", f"sip:s@127.0.0.1:{port}")
    assert silent.returncode == 3, silent.stdout
    assert time.monotonic() - started < 5
    refused = probe("-t", "0.6", f"sip:s@127.0.0.1:{port};transport=tcp")
    assert refused.returncode == 3, refused.stdout
    nagios = probe("-N", "-t", "0.6", f"sip:s@127.0.0.1:{port}")
    assert nagios.returncode == 2 and "CRITICAL" in nagios.stdout


def test_probe_local_error_exit_2() -> None:
    assert probe("not-a-uri").returncode == 2
    assert probe("tel:+123").returncode == 2


def test_probe_other_final_reply_exit_1(tmp_path: Path) -> None:
    require_binary("sipp")
    port = free_sip_port()
    server = subprocess.Popen(
        ["sipp", "-nostdin", "-sf", str(SCENARIOS / "options_503.xml"), "-i", "127.0.0.1",
         "-p", str(port), "-m", "1", "-timeout", "15"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        result = probe("-t", "3", f"sip:s@127.0.0.1:{port}")
        assert result.returncode == 1, result.stdout
        assert "503" in result.stdout
    finally:
        server.kill()
        server.wait(timeout=5)

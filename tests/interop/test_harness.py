"""Checks of the interop harness itself (no PBX needed)."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.pbx_process import pjsip_conf, write_config
from tests.helpers.peers import (
    SCENARIOS,
    Baresip,
    SippResult,
    parse_baresip_trace,
    require_binary,
    require_pjsua2,
    run_pjsua2_register,
    run_sipp,
    sipp_received_start_lines,
)
from tests.helpers.ports import (
    free_port_pair_block,
    free_rtp_range,
    free_sip_port,
    port_is_free,
)

pytestmark = pytest.mark.interop


def test_ports_are_free_and_shaped() -> None:
    sip = free_sip_port()
    assert port_is_free(sip, udp=True, tcp=True)
    start = free_port_pair_block(2)
    assert port_is_free(start) and port_is_free(start + 1)
    first, last = free_rtp_range(10)
    assert first % 2 == 0 and last - first + 1 == 10
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", sip))
        assert not port_is_free(sip, udp=True, tcp=False)


def test_pjsip_conf_is_the_seeds_on_loopback(tmp_path: Path) -> None:
    write_config(tmp_path, 25060, tcp=False)
    conf = (tmp_path / "pjsip.conf").read_text()
    assert "bind=127.0.0.1:25060" in conf
    assert "[transport-tcp]" not in conf
    for user in ("8005", "8006"):
        assert conf.count(f"[{user}]") == 3
        assert f"password={user}" in conf
    assert conf.count("max_contacts=1") == 2
    assert "Dial(PJSIP/${EXTEN})" in (tmp_path / "extensions.conf").read_text()
    both = pjsip_conf(25060)
    assert "protocol=udp\nbind=127.0.0.1:25060" in both
    assert "protocol=tcp\nbind=127.0.0.1:25060" in both


# Values for the custom keys (-key NAME VALUE) some scenarios take from their test.
SCENARIO_KEYS = {"rtp_port": "40000", "sess_expires": "1800"}


SCENARIO_NAMES = sorted(p.name for p in SCENARIOS.glob("*.xml"))


@pytest.fixture(scope="module")
def scenario_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SippResult]:
    """Every scenario against one silent port, a dozen at a time (each waits 1 s for nothing)."""
    require_binary("sipp")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    target = f"127.0.0.1:{silent.getsockname()[1]}"
    ports: set[int] = set()
    while len(ports) < len(SCENARIO_NAMES):  # a distinct local port each
        ports.add(free_port_pair_block(1))
    keys = [arg for key, value in SCENARIO_KEYS.items() for arg in ("-key", key, value)]
    try:
        with ThreadPoolExecutor(12) as pool:
            runs = {
                name: pool.submit(
                    run_sipp, name, target, local_port=port, service="8005", timeout=1,
                    trace_dir=tmp_path_factory.mktemp(Path(name).stem), extra_args=keys,
                )
                for name, port in zip(SCENARIO_NAMES, sorted(ports), strict=True)
            }
            return {name: run.result() for name, run in runs.items()}
    finally:
        silent.close()


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_sipp_parses_scenario(scenario: str, scenario_runs: dict[str, SippResult]) -> None:
    """Against a silent port sipp must load the scenario and only time out."""
    result = scenario_runs[scenario]
    assert "timed out" in result.errors(), result.describe()
    assert "Variable" not in result.errors(), result.describe()


def test_sipp_message_log_parser() -> None:
    log = (
        "----------------------------------------------- 2026-01-01 00:00:00.0\n"
        "UDP message sent (10 bytes):\n\nREGISTER sip:x SIP/2.0\r\nCSeq: 1 REGISTER\r\n\r\n\n"
        "----------------------------------------------- 2026-01-01 00:00:00.1\n"
        "UDP message received [10] bytes :\n\nSIP/2.0 401 Unauthorized\r\nCSeq: 1 REGISTER\r\n\n"
    )
    assert sipp_received_start_lines(log) == ["SIP/2.0 401 Unauthorized"]


def test_baresip_trace_parser() -> None:
    log = (
        "baresip is ready.\n\x1b[36;1m#\nUDP 127.0.0.1:1 -> 127.0.0.1:2\n"
        "REGISTER sip:127.0.0.1:2 SIP/2.0\nContact: <sip:a@127.0.0.1:1>;expires=0\n"
        "CSeq: 7 REGISTER\n\n\x1b[;m\n\x1b[32;1m#\nUDP 127.0.0.1:2 -> 127.0.0.1:1\n"
        "SIP/2.0 200 OK\nCSeq: 7 REGISTER\n\n\x1b[;m\n"
    )
    msgs = parse_baresip_trace(log)
    assert [m.start_line for m in msgs] == ["REGISTER sip:127.0.0.1:2 SIP/2.0", "SIP/2.0 200 OK"]
    assert msgs[1].header("CSeq") == "7 REGISTER"


def test_baresip_starts_and_answers_ctrl_tcp(tmp_path: Path) -> None:
    require_binary("baresip")
    silent = free_sip_port()
    phone = Baresip(tmp_path / "b", user="8005", password="8005", registrar_port=silent)
    phone.start()
    try:
        assert "sip:8005@127.0.0.1" in phone.reginfo()
        assert not phone.is_registered()
    finally:
        assert phone.stop(timeout=2.0) is not None
    assert phone.proc is not None and phone.proc.poll() is not None


def test_pjsua2_script_fails_cleanly_on_closed_port() -> None:
    require_pjsua2()
    closed = free_sip_port()
    done = run_pjsua2_register(
        f"sip:127.0.0.1:{closed}", "8005", "8005", transport="tcp", timeout=3
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout

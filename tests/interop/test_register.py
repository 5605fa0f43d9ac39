"""Registration against a real ``callway pbx`` with real third-party peers.

The seed's demo users 8005/8006 (password = user name, realm ``asterisk``)
register with digest auth from sipp, baresip, pjsua2; sipsak probes with
OPTIONS.  Peers missing: skip (fail under CI=true).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import (
    SippResult,
    require_binary,
    require_pjsua2,
    run_pjsua2_register,
    run_sipp,
    run_sipsak_full,
)
from tests.helpers.ports import free_port_pair_block
from tests.interop.conftest import BaresipFactory

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


def sipp_register(
    pbx: PbxProcess,
    user: str,
    tmp_path: Path,
    *,
    password: str | None = None,
    scenario: str = "register_auth.xml",
    transport: str = "u1",
    local_port: int | None = None,
) -> SippResult:
    require_binary("sipp")
    return run_sipp(
        scenario,
        f"127.0.0.1:{pbx.sip_port}",
        local_port=local_port if local_port is not None else free_port_pair_block(1),
        service=user,
        transport=transport,
        extra_args=["-au", user, "-ap", password if password is not None else user],
        timeout=10,
        trace_dir=tmp_path / f"sipp-{scenario.removesuffix('.xml')}-{user}-{transport}",
    )


def assert_sipp_ok(result: SippResult) -> None:
    assert result.returncode == 0, result.describe()


def _contact_ports(rows: list[dict[str, object]]) -> list[str]:
    return [
        m.group(1)
        for r in rows
        if (m := re.search(r"(?:@|sips?:)[\w.\-\[\]]+:(\d+)", str(r.get("uri", ""))))
    ]


# --------------------------------------------------------------------------
# sipp
# --------------------------------------------------------------------------
def test_sipp_registers_8005_and_8006_with_digest(pbx: PbxProcess, tmp_path: Path) -> None:
    for user in ("8005", "8006"):
        port = free_port_pair_block(1)
        result = sipp_register(pbx, user, tmp_path, local_port=port)
        assert_sipp_ok(result)
        assert result.received() == ["SIP/2.0 401 Unauthorized", "SIP/2.0 200 OK"], (
            result.describe()
        )
        challenge = result.messages()
        assert re.search(r'WWW-Authenticate:\s*Digest\s.*realm="asterisk"', challenge, re.I), (
            result.describe()
        )
        rows = pbx.wait_contacts(user)
        assert rows, f"no contact for {user} in {pbx.sqlite_path}"
        assert str(port) in _contact_ports(rows), rows


def test_sipp_wrong_password_gets_401_then_403_never_200(pbx: PbxProcess, tmp_path: Path) -> None:
    result = sipp_register(
        pbx, "8005", tmp_path, password="not-the-password", scenario="register_wrong_password.xml"
    )
    assert_sipp_ok(result)
    statuses = [line.split()[1] for line in result.received()]
    assert "200" not in statuses, result.describe()
    assert statuses[0] == "401", result.describe()
    assert statuses[-1] == "403", result.describe()
    assert set(statuses) <= {"401", "403"}, result.describe()
    assert not pbx.wait_contacts("8005", present=True, timeout=0.5)


def test_sipp_unregister_removes_binding(pbx: PbxProcess, tmp_path: Path) -> None:
    port = free_port_pair_block(1)
    assert_sipp_ok(sipp_register(pbx, "8006", tmp_path, local_port=port))
    assert pbx.wait_contacts("8006")
    result = sipp_register(pbx, "8006", tmp_path, scenario="unregister.xml", local_port=port)
    assert_sipp_ok(result)
    assert pbx.wait_contacts("8006", present=False) == []


def test_sipp_registers_over_tcp(pbx: PbxProcess, tmp_path: Path) -> None:
    port = free_port_pair_block(1)
    result = sipp_register(pbx, "8005", tmp_path, transport="t1", local_port=port)
    assert_sipp_ok(result)
    assert "TCP message received" in result.messages(), result.describe()
    rows = pbx.wait_contacts("8005")
    assert rows, f"no contact for 8005 in {pbx.sqlite_path}"
    assert any("transport=tcp" in str(r["uri"]).lower() for r in rows), rows


def test_sipp_options_answered_200(pbx: PbxProcess, tmp_path: Path) -> None:
    require_binary("sipp")
    result = run_sipp(
        "options.xml",
        f"127.0.0.1:{pbx.sip_port}",
        service="s",
        timeout=10,
        trace_dir=tmp_path / "sipp-options",
    )
    assert_sipp_ok(result)


def test_registrations_survive_restart(pbx: PbxProcess, tmp_path: Path) -> None:
    port = free_port_pair_block(1)
    assert_sipp_ok(sipp_register(pbx, "8005", tmp_path, local_port=port))
    before = pbx.wait_contacts("8005")
    assert before, f"no contact for 8005 in {pbx.sqlite_path}"

    pbx.restart()

    after = pbx.contacts("8005")
    assert [r["uri"] for r in after] == [r["uri"] for r in before], (before, after)
    # and the restarted PBX still knows it: un-registering that binding works
    result = sipp_register(pbx, "8005", tmp_path, scenario="unregister.xml", local_port=port)
    assert_sipp_ok(result)
    assert pbx.wait_contacts("8005", present=False) == []


# --------------------------------------------------------------------------
# sipsak (the seed's health probe)
# --------------------------------------------------------------------------
def test_sipsak_options_probe_exits_0(pbx: PbxProcess) -> None:
    require_binary("sipsak")
    done = run_sipsak_full(f"sip:s@127.0.0.1:{pbx.sip_port}")
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)


# --------------------------------------------------------------------------
# baresip
# --------------------------------------------------------------------------
def test_baresip_8005_and_8006_register_and_unregister_on_exit(
    pbx: PbxProcess, baresip_factory: BaresipFactory
) -> None:
    require_binary("baresip")
    phones = [
        baresip_factory(user=user, password=user, registrar_port=pbx.sip_port)
        for user in ("8005", "8006")
    ]
    for phone in phones:
        phone.wait_registered(timeout=10)
    for phone in phones:
        rows = pbx.wait_contacts(phone.user)
        assert rows, f"no contact for {phone.user} in {pbx.sqlite_path}"
        assert str(phone.sip_port) in _contact_ports(rows), rows

    for phone in phones:
        phone.stop()
        statuses = phone.unregister_statuses()
        assert any(s.startswith("SIP/2.0 200") for s in statuses), (
            f"{phone.user}: un-REGISTER answered {statuses}\n{phone.log_text()[-6000:]}"
        )
        assert pbx.wait_contacts(phone.user, present=False) == []


# --------------------------------------------------------------------------
# pjsua2 (PJSIP, the seed's own client library)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_pjsua2_registers_and_unregisters(pbx: PbxProcess, transport: str) -> None:
    require_pjsua2()
    done = run_pjsua2_register(
        f"sip:127.0.0.1:{pbx.sip_port}", "8006", "8006", transport=transport, timeout=8
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"^REGISTERED 200\b", done.stdout, re.M), output
    assert re.search(r"^UNREGISTERED 200\b", done.stdout, re.M), output
    assert pbx.wait_contacts("8006", present=False) == []


def test_pjsua2_wrong_password_is_rejected(pbx: PbxProcess) -> None:
    require_pjsua2()
    done = run_pjsua2_register(f"sip:127.0.0.1:{pbx.sip_port}", "8005", "wrong", timeout=8)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"^FAILED register (401|403)\b", done.stdout, re.M), done.stdout

"""The admin API against a real PBX, with sipp registering a phone.

The PBX runs in-process (a :class:`PbxApp` over a temporary config
directory, served on the test's event loop) with the admin server beside it,
the way ``callway pbx`` will wire them; sipp runs in a worker thread so the
loop keeps answering it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from callway.admin.server import AdminServer, start_admin
from callway.app.admin_backends import PbxBackend
from callway.app.pbx import PbxApp, PbxSettings
from tests.helpers.pbx_process import DEMO_EXTENSIONS, pjsip_conf
from tests.helpers.peers import SippResult, require_binary, run_sipp
from tests.helpers.ports import free_port_pair_block, free_sip_port

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]
T = TypeVar("T")


def make_pbx(config_dir: Path) -> tuple[PbxApp, int]:
    """A PBX over the seed's config on a free loopback port (not started)."""
    port = free_sip_port()
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "pjsip.conf").write_text(pjsip_conf(port))
    (config_dir / "extensions.conf").write_text(DEMO_EXTENSIONS)
    return PbxApp(PbxSettings(config_dir=config_dir, state_dir=config_dir)), port


def run_with_pbx(tmp_path: Path, body: Callable[[PbxApp, int, AdminServer], Awaitable[T]]) -> T:
    """Start a PBX and its admin server (token from the state dir), run ``body``, stop."""

    async def main() -> T:
        app, port = make_pbx(tmp_path / "pbx")
        await app.start()
        admin = await start_admin(PbxBackend(app), "127.0.0.1:0", "", tmp_path / "pbx")
        try:
            return await body(app, port, admin)
        finally:
            await admin.close()
            await app.stop()

    return asyncio.run(main())


async def sipp_register(
    port: int, user: str, trace_dir: Path, local_port: int | None = None
) -> SippResult:
    """sipp's register_auth scenario for ``user`` (password = user), off the loop."""
    return await asyncio.to_thread(
        run_sipp, "register_auth.xml", f"127.0.0.1:{port}",
        local_port=local_port or free_port_pair_block(1), service=user,
        extra_args=["-au", user, "-ap", user], timeout=10, trace_dir=trace_dir,
    )  # fmt: skip


async def start_call(
    port: int, tmp_path: Path, talk_ms: int
) -> tuple[asyncio.Task[SippResult], asyncio.Task[SippResult]]:
    """8006 registers and answers (sipp UAS); 8005 calls it and hangs up after ``talk_ms``.

    Returns the running (caller, callee) sipp runs.
    """
    callee_port = free_port_pair_block(1)
    registered = await sipp_register(port, "8006", tmp_path / "sipp-reg-8006", callee_port)
    assert registered.returncode == 0, registered.describe()
    target = f"127.0.0.1:{port}"
    uas = asyncio.ensure_future(asyncio.to_thread(
        run_sipp, "call_uas.xml", target, local_port=callee_port, service="8006", timeout=30,
        trace_dir=tmp_path / "sipp-uas",
    ))  # fmt: skip
    await asyncio.sleep(0.3)  # let sipp bind before the INVITE comes
    uac = asyncio.ensure_future(asyncio.to_thread(
        run_sipp, "call_uac.xml", target, service="8006", timeout=30,
        extra_args=["-au", "8005", "-ap", "8005", "-d", str(talk_ms)],
        trace_dir=tmp_path / "sipp-uac",
    ))  # fmt: skip
    return uac, uas


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``predicate`` every 100 ms until it holds; AssertionError after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.1)


def test_sipp_registration_shows_in_the_api_and_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_binary("sipp")
    caplog.set_level(logging.INFO, logger="callway.admin")

    async def body(app: PbxApp, port: int, admin: AdminServer) -> None:
        token = (tmp_path / "pbx" / "admin.token").read_text().strip()
        assert token == admin.token
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(admin.url) as http:
            async with http.get("/api/v1/registrations") as response:
                assert response.status == 401
            async with http.get("/api/v1/registrations", headers=auth) as response:
                assert (await response.json()) == {"registrations": []}

            result = await sipp_register(port, "8005", tmp_path / "sipp-8005")
            assert result.returncode == 0, result.describe()

            async with http.get("/api/v1/registrations", headers=auth) as response:
                regs = (await response.json())["registrations"]
            assert [r["aor"] for r in regs] == ["8005"]
            assert regs[0]["uri"].startswith("sip:8005@127.0.0.1:")
            assert regs[0]["source"].startswith("udp:127.0.0.1:")
            assert regs[0]["user_agent"] == "sipp-callway-interop"
            assert 3500 <= regs[0]["expires_in"] <= 3600

            async with http.get("/metrics", headers=auth) as response:
                assert response.status == 200
                text = await response.text()
            values = {s.name: s.value for f in text_string_to_metric_families(text)
                      for s in f.samples}  # fmt: skip
            assert values["callway_registrations"] == 1
            assert values["callway_active_calls"] == 0
            assert values["callway_calls_total"] == 0

            async with http.get("/api/v1/health") as response:
                assert (await response.json())["role"] == "pbx"
            async with http.post("/api/v1/reload", headers=auth) as response:
                assert (await response.json()) == {"reloaded": True}

    run_with_pbx(tmp_path, body)
    assert any("admin.token" in r.getMessage() for r in caplog.records)


def test_a_call_appears_in_the_api_then_becomes_a_cdr(tmp_path: Path) -> None:
    require_binary("sipp")

    async def body(app: PbxApp, port: int, admin: AdminServer) -> None:
        auth = {"Authorization": f"Bearer {admin.token}"}
        async with aiohttp.ClientSession(admin.url, headers=auth) as http:

            async def calls() -> list[dict[str, Any]]:
                async with http.get("/api/v1/calls") as response:
                    return list((await response.json())["calls"])

            async def metric(name: str) -> float:
                async with http.get("/metrics") as response:
                    text = await response.text()
                return next(s.value for f in text_string_to_metric_families(text)
                            for s in f.samples if s.name == name)  # fmt: skip

            uac, uas = await start_call(port, tmp_path, talk_ms=3000)

            async def answered() -> bool:
                return any(c["state"] == "up" for c in await calls())

            await wait_for(answered)
            (call,) = await calls()
            assert (call["caller"], call["exten"]) == ("8005", "8006")
            assert call["name"].startswith("PJSIP/8005-")
            assert [leg["name"] for leg in call["legs"]] == ["a", "b"]
            assert set(call["legs"][0]["quality"]) == {"loss", "jitter_ms", "r_factor", "mos"}
            assert await metric("callway_active_calls") == 1
            assert await metric("callway_calls_total") == 1

            for run in (await uac, await uas):
                assert run.returncode == 0, run.describe()

            async def ended() -> bool:
                return not await calls()

            await wait_for(ended)
            async with http.get("/api/v1/cdrs?limit=5") as response:
                (cdr,) = (await response.json())["cdrs"]
            assert (cdr["src"], cdr["dst"], cdr["disposition"]) == ("8005", "8006", "ANSWERED")
            assert cdr["uniqueid"] == call["id"]
            assert await metric("callway_active_calls") == 0
            assert await metric("callway_calls_total") == 1

    run_with_pbx(tmp_path, body)

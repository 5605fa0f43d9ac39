"""The dashboard in real headless Chromium: a call appears on the page and goes away.

Chromium (Debian ``chromium``) is driven over the DevTools protocol with a
small client below, no WebDriver needed.  The page gets its token from the
URL fragment, opens the live WebSocket, and the test watches the DOM while
sipp registers and places a call through a real in-process PBX.  A
screenshot of the page during the call is saved (``$ARTIFACTS_DIR`` or the
test's tmp_path) and attached to the report.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from callway.admin.server import AdminServer
from callway.app.pbx import PbxApp
from tests.helpers.peers import in_ci, require_binary
from tests.interop.test_admin import run_with_pbx, sipp_register, start_call, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def chromium_binary() -> str:
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    if in_ci():
        pytest.fail("chromium not installed (apt-get install chromium)")
    pytest.skip("chromium not installed (apt-get install chromium)")


class DevTools:
    """Just enough of the Chrome DevTools protocol: commands on one page target."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run a command and return its result (events in between are ignored)."""
        call_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            msg = await self.ws.receive(timeout=15)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"DevTools connection ended: {msg!r}")
            data = json.loads(msg.data)
            if data.get("id") == call_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return dict(data.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with a DevTools session on its first page."""
    proc = subprocess.Popen(
        [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-dev-shm-usage", "--no-first-run", "--window-size=1280,900",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield DevTools(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


ROWS = "document.querySelectorAll('#{table} tbody tr[data-key]').length"


def test_dashboard_shows_a_call_appear_and_disappear(tmp_path: Path) -> None:
    require_binary("sipp")
    chromium_binary()
    artifacts = Path(os.environ.get("ARTIFACTS_DIR") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)

    async def body(app: PbxApp, port: int, admin: AdminServer) -> None:
        async with chromium(tmp_path / "chromium-profile") as page:
            await page.send("Page.enable")
            await page.send("Page.navigate", url=f"{admin.url}/#token={admin.token}")

            async def rows(table: str) -> int:
                return int(await page.evaluate(ROWS.format(table=table)) or 0)

            async def live() -> bool:
                status = await page.evaluate("document.getElementById('status').textContent")
                return bool(status == "live")

            await wait_for(live)
            # The token left the address bar once read.
            assert "token" not in await page.evaluate("location.href")
            assert await rows("calls") == 0

            result = await sipp_register(port, "8005", tmp_path / "sipp-reg-8005")
            assert result.returncode == 0, result.describe()

            async def registered() -> bool:
                return await rows("registrations") == 1

            await wait_for(registered, 5)

            uac, uas = await start_call(port, tmp_path, talk_ms=4000)

            async def call_up() -> bool:
                text = await page.evaluate("document.querySelector('#calls tbody').innerText")
                return await rows("calls") == 1 and "PJSIP/8005-" in text and "up" in text

            await wait_for(call_up, 6)
            shot = await page.send("Page.captureScreenshot", format="png")
            (artifacts / "dashboard-call.png").write_bytes(base64.b64decode(shot["data"]))
            cells = await page.evaluate(
                "[...document.querySelectorAll('#calls tbody tr td')].map(td => td.textContent)"
            )
            assert cells[1:3] == ["8005", "8006"] and cells[4] == "up", cells
            assert cells[3].startswith("sip:8006@"), cells  # the peer: the callee's contact

            for run in (await uac, await uas):
                assert run.returncode == 0, run.describe()

            async def call_gone() -> bool:
                return await rows("calls") == 0

            await wait_for(call_gone, 5)
            assert await rows("registrations") == 2  # 8005 and the callee 8006

    run_with_pbx(tmp_path, body)
    assert (artifacts / "dashboard-call.png").stat().st_size > 1000

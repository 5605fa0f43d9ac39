"""The admin API over a real local socket, against a fake backend."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import WSMsgType

from callway.admin.api import ROUTES
from callway.admin.auth import TOKEN_FILE
from callway.admin.server import HUB_KEY, parse_listen, start_admin
from tests.unit.admin.fakes import (
    AUTH,
    TOKEN,
    Client,
    FakeBackend,
    call,
    cdr,
    destination,
    registration,
    with_client,
)

PROTECTED = [(m, p) for m, p, _ in ROUTES if not p.endswith("/health")] + [
    ("GET", "/metrics"),
    ("GET", "/api/v1/live"),
]


def _concrete(path: str) -> str:
    return path.replace("{setid}", "1").replace("{uri}", quote("sip:127.0.0.1:5070", safe=""))


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_protected_route_needs_the_token(method: str, path: str) -> None:
    async def body(client: Client) -> None:
        url = _concrete(path)
        response = await client.request(method, url, json={"state": "DX"})
        assert response.status == 401, url
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        response = await client.request(method, url, json={"state": "DX"},
                                        headers={"Authorization": "Bearer wrong"})  # fmt: skip
        assert response.status == 401
        response = await client.request(method, url + "?token=nope")
        assert response.status == 401

    with_client(FakeBackend(destinations=[destination()]), body)


def test_health_is_public() -> None:
    async def body(client: Client) -> None:
        response = await client.get("/api/v1/health")
        assert response.status == 200
        data = await response.json()
        assert data["status"] == "ok" and data["role"] == "pbx" and data["uptime"] >= 10

    with_client(FakeBackend(), body)


def test_registrations_calls_callbacks_rooms() -> None:
    backend = FakeBackend(regs=[registration("8005"), registration("8006")], active=[call()])

    async def body(client: Client) -> None:
        regs = await (await client.get("/api/v1/registrations", headers=AUTH)).json()
        assert [r["aor"] for r in regs["registrations"]] == ["8005", "8006"]
        assert regs["registrations"][0]["source"] == "udp:127.0.0.1:5070"
        calls = await (await client.get("/api/v1/calls", headers=AUTH)).json()
        (c,) = calls["calls"]
        assert c["name"] == "PJSIP/8005-00000001" and c["state"] == "up"
        assert [leg["name"] for leg in c["legs"]] == ["a", "b"]
        assert c["legs"][0]["quality"] == {"loss": 0.01, "jitter_ms": 12.5, "r_factor": 88.0,
                                           "mos": 4.3}  # fmt: skip
        assert c["legs"][1]["quality"]["mos"] is None
        assert c["mos"] == 4.3
        for route, key in (("callbacks", "callbacks"), ("rooms", "rooms")):
            data = await (await client.get(f"/api/v1/{route}", headers=AUTH)).json()
            assert data == {key: []}

    with_client(backend, body)


def test_token_in_query_is_accepted() -> None:
    async def body(client: Client) -> None:
        response = await client.get(f"/api/v1/registrations?token={TOKEN}")
        assert response.status == 200

    with_client(FakeBackend(), body)


def test_cdrs_limit_and_since() -> None:
    backend = FakeBackend(records=[cdr(f"{i:08x}", end=1000.0 + i) for i in range(1, 8)])

    async def body(client: Client) -> None:
        data = await (await client.get("/api/v1/cdrs", headers=AUTH)).json()
        assert len(data["cdrs"]) == 7
        data = await (await client.get("/api/v1/cdrs?limit=2", headers=AUTH)).json()
        assert [r["uniqueid"] for r in data["cdrs"]] == ["00000006", "00000007"]
        data = await (await client.get("/api/v1/cdrs?since=1005", headers=AUTH)).json()
        assert [r["end"] for r in data["cdrs"]] == [1005.0, 1006.0, 1007.0]
        for bad in ("limit=x", "limit=-1", "since=nan", "since=-3"):
            response = await client.get(f"/api/v1/cdrs?{bad}", headers=AUTH)
            assert response.status == 400, bad
            assert (await response.json())["error"] == "bad query parameter"

    with_client(backend, body)


def test_reload_reports_failure() -> None:
    backend = FakeBackend()

    async def body(client: Client) -> None:
        response = await client.post("/api/v1/reload", headers=AUTH)
        assert response.status == 200 and await response.json() == {"reloaded": True}
        backend.reload_ok = False
        response = await client.post("/api/v1/reload", headers=AUTH)
        assert response.status == 422 and (await response.json())["reloaded"] is False
        assert backend.reloads == 2

    with_client(backend, body)


def test_dispatcher_sets_and_set_state() -> None:
    uri = "sip:127.0.0.1:5070;transport=tcp"
    backend = FakeBackend(
        role="balancer",
        destinations=[destination(uri), destination("sip:127.0.0.2:5060", "IP"),
                      destination("sip:10.0.0.9:5060", setid=2)],
    )  # fmt: skip

    async def body(client: Client) -> None:
        data = await (await client.get("/api/v1/dispatcher", headers=AUTH)).json()
        assert [s["setid"] for s in data["sets"]] == [1, 2]
        first = data["sets"][0]["destinations"]
        assert [(d["uri"], d["state"], d["usable"]) for d in first] == [
            (uri, "AP", True),
            ("sip:127.0.0.2:5060", "IP", False),
        ]
        url = f"/api/v1/dispatcher/1/destinations/{quote(uri, safe='')}/state"
        response = await client.put(url, json={"state": "DX"}, headers=AUTH)
        assert response.status == 200, await response.text()
        assert await response.json() == {"setid": 1, "uri": uri, "state": "DX", "changed": 1}
        assert backend.state_changes == [(uri, "DX", 1)]
        missing = "/api/v1/dispatcher/1/destinations/sip%3Anowhere/state"
        response = await client.put(missing, json={"state": "DX"}, headers=AUTH)
        assert response.status == 404
        response = await client.put(url, json={"state": "QQ"}, headers=AUTH)
        assert response.status == 400 and (await response.json())["error"] == "bad state"
        response = await client.put(url, data=b"not json", headers=AUTH)
        assert response.status == 400
        response = await client.put(url, json=["DX"], headers=AUTH)
        assert response.status == 400
        response = await client.put(url.replace("/1/", "/x/"), json={"state": "DX"},
                                    headers=AUTH)  # fmt: skip
        assert response.status == 400

    with_client(backend, body)


def test_dashboard_page_is_served() -> None:
    async def body(client: Client) -> None:
        response = await client.get("/")
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
        assert "/api/v1/live" in page and 'id="calls"' in page and 'id="dispatcher"' in page

    with_client(FakeBackend(), body)


def test_live_websocket_pushes_snapshots() -> None:
    backend = FakeBackend(regs=[registration()], destinations=[destination()])

    async def body(client: Client) -> None:
        ws = await client.ws_connect(f"/api/v1/live?token={TOKEN}")
        msg = await ws.receive(timeout=5)
        assert msg.type == WSMsgType.TEXT
        snap = json.loads(msg.data)
        assert set(snap) == {"time", "node", "calls", "registrations", "dispatcher"}
        assert snap["registrations"][0]["aor"] == "8005" and snap["calls"] == []
        assert snap["dispatcher"][0]["destinations"][0]["state"] == "AP"
        backend.active.append(call())
        app = client.app
        assert app is not None
        await app[HUB_KEY].broadcast()  # what the refresher does every second
        snap = json.loads((await ws.receive(timeout=5)).data)
        assert [c["id"] for c in snap["calls"]] == ["00000001"]
        await ws.close()

    with_client(backend, body)


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8088") == ("127.0.0.1", 8088)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse_listen(":0") == ("127.0.0.1", 0)
    for bad in ("8088", "host:", "1.2.3.4:99999", "a:b"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_start_admin_writes_a_private_token_file(tmp_path: Path) -> None:
    async def main() -> None:
        server = await start_admin(FakeBackend(regs=[registration()]), "127.0.0.1:0", "",
                                   tmp_path / "state")  # fmt: skip
        try:
            path = tmp_path / "state" / TOKEN_FILE
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            token = path.read_text().strip()
            assert token == server.token and len(token) >= 32
            assert server.port > 0 and server.url.startswith("http://127.0.0.1:")
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /api/v1/registrations HTTP/1.0\r\nAuthorization: Bearer "
                         + token.encode() + b"\r\n\r\n")  # fmt: skip
            answer = await reader.read()
            writer.close()
            assert answer.startswith(b"HTTP/1.0 200") and b'"8005"' in answer
        finally:
            await server.close()

    asyncio.run(main())


def test_configured_token_writes_no_file(tmp_path: Path) -> None:
    async def main() -> None:
        server = await start_admin(FakeBackend(), "127.0.0.1:0", "given", tmp_path)
        await server.close()
        assert server.token == "given"
        assert not (tmp_path / TOKEN_FILE).exists()

    asyncio.run(main())

"""The admin HTTP server: JSON API, dashboard, live WebSocket and Prometheus metrics.

One aiohttp application per node, bound to localhost by default
(``[admin] listen`` in ``callway.toml``).  Every route but ``/``,
``/openapi.json`` and ``/api/v1/health`` needs the bearer token (see
:mod:`callway.admin.auth`).  A refresher task takes one snapshot of the node
every second: it feeds the metrics and is pushed to every dashboard
connected to ``/api/v1/live``, however many there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from callway.admin.api import BACKEND_KEY, EVENT_SOCKETS, ROUTES
from callway.admin.auth import ensure_token, token_middleware
from callway.admin.backend import AdminBackend
from callway.admin.metrics import CONTENT_TYPE_LATEST, Metrics
from callway.admin.model import Call, to_json
from callway.admin.openapi import openapi

__all__ = ["AdminServer", "build_app", "parse_listen", "start_admin"]

log = logging.getLogger("callway.admin")

REFRESH = 1.0  # seconds between snapshots (metrics and the live page)
CALLS_PER_STEP = 25  # calls built per event-loop turn for the periodic metrics sample
LIVE_PATH = "/api/v1/live"


def parse_listen(text: str) -> tuple[str, int]:
    """``IP:PORT`` or ``[IPv6]:PORT`` (``:PORT`` means 127.0.0.1); ValueError otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"bad admin listen address {text!r} (expected IP:PORT)")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    return host, int(port)


class LiveHub:
    """The latest snapshot and the WebSockets it goes to."""

    def __init__(self, backend: AdminBackend, metrics: Metrics) -> None:
        self.backend = backend
        self.metrics = metrics
        self.sockets: set[web.WebSocketResponse] = set()
        self.latest = ""

    def snapshot(self, calls: list[Call] | None = None) -> str:
        """Read the node once, update the metrics with it, and keep it as JSON text.

        ``calls``: the active calls when the caller has built them already.
        """
        b = self.backend
        info = b.node_info()
        calls = b.calls() if calls is None else calls
        registrations = b.registrations()
        destinations = b.dispatcher_sets()
        self.metrics.update(calls, len(registrations), destinations)
        sets: dict[int, list[Any]] = {}
        for dest in destinations:
            sets.setdefault(dest.setid, []).append(to_json(dest))
        now = time.time()
        self.latest = json.dumps({
            "time": now,
            "node": {"status": "ok", "role": info.role, "version": info.version,
                     "uptime": round(now - info.started, 1)},
            "calls": to_json(calls),
            "registrations": to_json(registrations),
            "dispatcher": [{"setid": s, "destinations": d} for s, d in sets.items()],
        })  # fmt: skip
        return self.latest

    async def broadcast(self) -> None:
        """Send a fresh snapshot to every connected page (metrics only when none is)."""
        self.sockets = {ws for ws in self.sockets if not ws.closed}
        if not self.sockets:
            b = self.backend
            calls = await self._calls_in_steps()
            self.metrics.update(calls, b.registration_count(), b.dispatcher_sets())
            self.latest = ""
            return
        text = self.snapshot(await self._calls_in_steps())
        for ws in list(self.sockets):
            if ws.closed:
                self.sockets.discard(ws)
                continue
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                self.sockets.discard(ws)

    async def _calls_in_steps(self) -> list[Call]:
        """Every call, built :data:`CALLS_PER_STEP` at a time with the loop free in between.

        Building one costs tens of microseconds (media counters, RTCP
        quality): hundreds at once would hold the relay's packets for
        milliseconds, which the phones hear as jitter.
        """
        calls: list[Call] = []
        for call in self.backend.iter_calls():
            calls.append(call)
            if len(calls) % CALLS_PER_STEP == 0:
                await asyncio.sleep(0)
        return calls

    async def run(self) -> None:
        """Every :data:`REFRESH` seconds, for ever; a failing backend is logged, not fatal."""
        while True:
            try:
                await self.broadcast()
            except Exception:
                log.exception("admin snapshot failed")
            await asyncio.sleep(REFRESH)


HUB_KEY = web.AppKey("hub", LiveHub)
METRICS_KEY = web.AppKey("metrics", Metrics)


async def _live(request: web.Request) -> web.WebSocketResponse:
    hub = request.app[HUB_KEY]
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    hub.sockets.add(ws)
    try:
        await ws.send_str(hub.latest or hub.snapshot())
        async for msg in ws:  # the page sends nothing; this waits for it to leave
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        hub.sockets.discard(ws)
    return ws


async def _metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS_KEY]
    metrics.update()
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _openapi(_request: web.Request) -> web.Response:
    return web.json_response(openapi())


async def _dashboard(_request: web.Request) -> web.Response:
    page = resources.files("callway.admin").joinpath("static/dashboard.html").read_bytes()
    return web.Response(
        body=page, content_type="text/html", charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Frame-Options": "DENY",
                 "Referrer-Policy": "no-referrer"},
    )  # fmt: skip


def build_app(backend: AdminBackend, token: str) -> web.Application:
    """The aiohttp application (no socket, no refresher task: tests drive it)."""
    if not token:
        raise ValueError("the admin server needs a token")
    app = web.Application(middlewares=[token_middleware(token)])
    metrics = Metrics(backend)
    app[BACKEND_KEY] = backend
    app[METRICS_KEY] = metrics
    app[HUB_KEY] = LiveHub(backend, metrics)
    app[EVENT_SOCKETS] = set()
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_get(LIVE_PATH, _live)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_get("/", _dashboard)
    app.on_shutdown.append(_close_sockets)
    return app


async def _close_sockets(app: web.Application) -> None:
    for ws in [*app[HUB_KEY].sockets, *app[EVENT_SOCKETS]]:
        await ws.close(code=1001, message=b"server shutdown")


class AdminServer:
    """A listening admin server; :meth:`close` stops it."""

    def __init__(self, app: web.Application, runner: web.AppRunner, token: str) -> None:
        self.app = app
        self.runner = runner
        self.token = token
        self.host = ""
        self.port = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` the server answers on."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop the refresher, close the live sockets and the listening socket."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.runner.cleanup()


async def start_admin(
    backend: AdminBackend, listen: str, token: str, state_dir: Path
) -> AdminServer:
    """Serve the admin API on ``listen`` (``IP:PORT``; port 0 picks a free one).

    With an empty ``token`` a random one is written to ``state_dir/admin.token``.
    Raises ValueError for a bad address and OSError when it cannot bind.
    """
    host, port = parse_listen(listen)
    token = ensure_token(token, state_dir)
    app = build_app(backend, token)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    server = AdminServer(app, runner, token)
    server.host = host
    server.port = _bound_port(runner) or port
    server._task = asyncio.get_running_loop().create_task(app[HUB_KEY].run())
    log.info("admin API and dashboard on %s/", server.url)
    return server


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:  # (host, port, ...) of each listening socket
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None

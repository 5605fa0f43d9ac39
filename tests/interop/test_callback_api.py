"""The callback and room endpoints of the admin API against a real PBX and baresip phones.

As in ``test_admin.py`` the PBX runs in-process with its admin server on the
test's event loop; the phones are baresip processes, driven from worker
threads (their control calls block) so the loop keeps serving SIP and HTTP.
Each phone plays a sine of its own (440 Hz for 8005, 880 Hz for 8006).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from callway.admin.server import AdminServer, start_admin
from callway.app.admin_backends import PbxBackend
from callway.app.pbx import PbxApp, PbxSettings
from tests.helpers.pbx_process import DEMO_EXTENSIONS, pjsip_conf
from tests.helpers.peers import Baresip, require_binary
from tests.helpers.ports import free_sip_port
from tests.interop.test_calls_audio import wait_event
from tests.interop.test_rooms import TONES, tone_levels, tone_wav

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

EXTENSIONS = DEMO_EXTENSIONS + "exten => 900,1,ConfBridge(900)\n"
HELD_TOML = '[callback]\nendpoints = ["8006"]\nmode = "hold"\ntimeout = 30\n'
Body = Callable[[PbxApp, int, AdminServer, aiohttp.ClientSession], Awaitable[None]]


def run(tmp_path: Path, body: Body, toml: str = "") -> None:
    """An in-process PBX (with ``toml``) and its admin server; ``body`` gets an API session."""

    async def main() -> None:
        config = tmp_path / "pbx"
        config.mkdir(parents=True, exist_ok=True)
        port = free_sip_port()
        (config / "pjsip.conf").write_text(pjsip_conf(port, tcp=False))
        (config / "extensions.conf").write_text(EXTENSIONS)
        if toml:
            (config / "callway.toml").write_text(toml)
        app = PbxApp(PbxSettings(config_dir=config, state_dir=config))
        await app.start()
        admin = await start_admin(PbxBackend(app), "127.0.0.1:0", "", config)
        headers = {"Authorization": f"Bearer {admin.token}"}
        try:
            async with aiohttp.ClientSession(admin.url, headers=headers) as http:
                await body(app, port, admin, http)
        finally:
            await admin.close()
            await app.stop()

    asyncio.run(main())


def phone(stack: ExitStack, tmp_path: Path, user: str, port: int) -> Baresip:
    peer = Baresip(tmp_path / user, user, user, port)
    peer.audio_in = tone_wav(tmp_path / f"{user}.wav", TONES[user])
    return stack.enter_context(peer)


def forget_events(peer: Baresip) -> None:
    """Drop the events seen so far (the next call's wait_event must not match them)."""
    peer.events(0.2)
    if peer.ctrl is not None:
        peer.ctrl.events.clear()


async def event(peer: Baresip, kind: str, timeout: float = 10.0) -> None:
    await asyncio.to_thread(wait_event, peer, kind, timeout)


async def api(http: aiohttp.ClientSession, method: str, path: str, status: int,
              json: Any = None) -> Any:  # fmt: skip
    async with http.request(method, path, json=json) as response:
        assert response.status == status, await response.text()
        return await response.json()


async def poll(http: aiohttp.ClientSession, path: str, key: str, count: int,
               timeout: float = 10.0) -> list[Any]:  # fmt: skip
    """GET ``path`` until its ``key`` list has ``count`` items."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        items: list[Any] = (await api(http, "GET", path, 200))[key]
        if len(items) == count or loop.time() > deadline:
            assert len(items) == count, items
            return items
        await asyncio.sleep(0.1)


class EventLog:
    """A client of ``/api/v1/events`` collecting what it hears."""

    def __init__(self, admin: AdminServer, http: aiohttp.ClientSession) -> None:
        self.admin = admin
        self.http = http
        self.events: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def __aenter__(self) -> EventLog:
        self._task = asyncio.ensure_future(self._listen())
        await asyncio.wait_for(self.ready.wait(), 5)
        await asyncio.sleep(0.1)  # the server has subscribed once the socket is up
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _listen(self) -> None:
        async with self.http.ws_connect(f"/api/v1/events?token={self.admin.token}") as ws:
            self.ready.set()
            async for message in ws:
                self.events.append(message.json())

    def kinds(self, call_id: str) -> list[str]:
        return [e["event"] for e in self.events if e["call_id"] == call_id]

    async def until(self, call_id: str, kind: str, timeout: float = 10.0) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while kind not in self.kinds(call_id):
            assert loop.time() < deadline, f"no {kind} for {call_id}: {self.events}"
            await asyncio.sleep(0.05)
        return self.kinds(call_id)


def test_originate_calls_a_then_b_and_both_hear_each_other(tmp_path: Path) -> None:
    require_binary("baresip")
    call_ids: list[str] = []

    async def body(app: PbxApp, port: int, admin: AdminServer,
                   http: aiohttp.ClientSession) -> None:  # fmt: skip
        with ExitStack() as stack:
            a, b = phone(stack, tmp_path, "8005", port), phone(stack, tmp_path, "8006", port)
            await asyncio.to_thread(a.wait_registered)
            await asyncio.to_thread(b.wait_registered)
            async with EventLog(admin, http) as log:
                reply = await api(http, "POST", "/api/v1/originate", 202,
                                  {"from": "8005", "to": "8006"})  # fmt: skip
                call_ids.append(reply["id"])
                await event(a, "CALL_ESTABLISHED")
                await event(b, "CALL_ESTABLISHED")
                (call,) = await poll(http, "/api/v1/calls", "calls", 1)
                assert (call["id"], call["caller"], call["exten"]) == (reply["id"], "8005", "8006")
                await asyncio.sleep(4)
                await asyncio.to_thread(a.hangup)
                await event(a, "CALL_CLOSED")
                await event(b, "CALL_CLOSED")
                kinds = await log.until(reply["id"], "call_ended")
            assert kinds == ["call_started", "call_answered", "call_ended"], log.events
            ended = next(e for e in log.events if e["event"] == "call_ended")
            assert ended["disposition"] == "ANSWERED"
        await poll(http, "/api/v1/calls", "calls", 0)
        assert app.calls.stats()["rtp_pairs"] == 0

    run(tmp_path, body)
    assert call_ids
    for user, other in (("8005", "8006"), ("8006", "8005")):
        peer_dir = tmp_path / user
        recordings = sorted((peer_dir / "rec").glob("dump-*-dec.wav"))
        levels = tone_levels(recordings[0], list(TONES.values()))
        assert levels[TONES[other]] == 1.0 and levels[TONES[user]] < 0.05, (user, levels)


def test_originate_errors(tmp_path: Path) -> None:
    async def body(app: PbxApp, port: int, admin: AdminServer,
                   http: aiohttp.ClientSession) -> None:  # fmt: skip
        await api(http, "POST", "/api/v1/originate", 409, {"from": "8005", "to": "8006"})
        await api(http, "POST", "/api/v1/originate", 404, {"from": "8005", "to": "7777"})
        await api(http, "POST", "/api/v1/originate", 400, {"to": "8006"})
        assert app.calls.channels == {}

    run(tmp_path, body)


def test_drop_and_release_a_held_call(tmp_path: Path) -> None:
    """8006 is offline and push-capable: 8005's calls are held, then dropped / released."""
    require_binary("baresip")

    async def body(app: PbxApp, port: int, admin: AdminServer,
                   http: aiohttp.ClientSession) -> None:  # fmt: skip
        with ExitStack() as stack:
            a = phone(stack, tmp_path, "8005", port)
            await asyncio.to_thread(a.wait_registered)
            async with EventLog(admin, http) as log:
                for verb in ("drop", "release"):
                    await asyncio.to_thread(a.dial, f"sip:8006@127.0.0.1:{port}")
                    await event(a, "CALL_RINGING")
                    (held,) = await poll(http, "/api/v1/callbacks", "callbacks", 1)
                    assert (held["caller"], held["callee"], held["state"]) == (
                        "8005", "8006", "waiting")  # fmt: skip
                    if verb == "drop":
                        await api(http, "DELETE", f"/api/v1/callbacks/{held['id']}", 200)
                    else:
                        await api(http, "POST", f"/api/v1/callbacks/{held['id']}/release", 200)
                    await event(a, "CALL_CLOSED", timeout=5)
                    await poll(http, "/api/v1/callbacks", "callbacks", 0)
                    kinds = await log.until(held["id"], "call_ended")
                    last = "callback_dropped" if verb == "drop" else "callback_timeout"
                    assert kinds == ["call_started", "callback_held", last, "call_ended"], kinds
                    await asyncio.to_thread(forget_events, a)
            released = [e for e in log.events if e["event"] == "callback_timeout"]
            assert released[0]["reason"] == "released"
            await api(http, "DELETE", "/api/v1/callbacks/nope", 404)
        await poll(http, "/api/v1/calls", "calls", 0)
        assert app.calls.stats()["rtp_pairs"] == 0

    run(tmp_path, body, toml=HELD_TOML)


def test_mute_and_kick_a_room_member(tmp_path: Path) -> None:
    require_binary("baresip")

    async def body(app: PbxApp, port: int, admin: AdminServer,
                   http: aiohttp.ClientSession) -> None:  # fmt: skip
        with ExitStack() as stack:
            a, b = phone(stack, tmp_path, "8005", port), phone(stack, tmp_path, "8006", port)
            for peer in (a, b):
                await asyncio.to_thread(peer.wait_registered)
                await asyncio.to_thread(peer.dial, f"sip:900@127.0.0.1:{port}")
                await event(peer, "CALL_ESTABLISHED")
            await poll(http, "/api/v1/rooms", "rooms", 1)
            (room,) = (await api(http, "GET", "/api/v1/rooms", 200))["rooms"]
            assert room["name"] == "900" and len(room["members"]) == 2
            first, second = room["members"]
            path = f"/api/v1/rooms/900/members/{first}"
            await api(http, "PUT", path, 200, {"muted": True})
            (room,) = (await api(http, "GET", "/api/v1/rooms", 200))["rooms"]
            assert room["muted"] == [first]
            assert app.calls.rooms.get("900") is not None
            assert app.calls.rooms.get("900").is_muted(first)  # type: ignore[union-attr]
            await api(http, "PUT", path, 200, {"muted": False})
            await api(http, "DELETE", path, 200)
            await event(a, "CALL_CLOSED", timeout=5)  # the kicked phone gets a BYE
            (room,) = (await api(http, "GET", "/api/v1/rooms", 200))["rooms"]
            assert room["members"] == [second]
            await api(http, "DELETE", path, 404)
            await asyncio.to_thread(b.hangup)
            await event(b, "CALL_CLOSED")
            await poll(http, "/api/v1/rooms", "rooms", 0)

    run(tmp_path, body)


def test_originate_to_an_offline_callee_is_held_until_it_registers(tmp_path: Path) -> None:
    """B is offline and push-capable: A answers, hears music, and B is put through later."""
    require_binary("baresip")

    async def body(app: PbxApp, port: int, admin: AdminServer,
                   http: aiohttp.ClientSession) -> None:  # fmt: skip
        with ExitStack() as stack:
            a = phone(stack, tmp_path, "8005", port)
            await asyncio.to_thread(a.wait_registered)
            pair = {"from": "8005", "to": "8006"}
            reply = await api(http, "POST", "/api/v1/originate", 202, pair)
            await event(a, "CALL_ESTABLISHED")
            (held,) = await poll(http, "/api/v1/callbacks", "callbacks", 1)
            assert (held["id"], held["caller"], held["callee"]) == (reply["id"], "8005", "8006")
            b = phone(stack, tmp_path, "8006", port)  # the push woke the app
            await event(b, "CALL_ESTABLISHED", timeout=15)
            await poll(http, "/api/v1/callbacks", "callbacks", 0)
            await asyncio.sleep(3)
            await asyncio.to_thread(b.hangup)
            await event(a, "CALL_CLOSED")
        await poll(http, "/api/v1/calls", "calls", 0)

    run(tmp_path, body, toml=HELD_TOML)
    heard_by_b = sorted((tmp_path / "8006" / "rec").glob("dump-*-dec.wav"))[0]
    levels = tone_levels(heard_by_b, list(TONES.values()))
    assert levels[TONES["8005"]] == 1.0, levels

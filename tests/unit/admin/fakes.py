"""A fake :class:`AdminBackend` and a runner for aiohttp test clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callway.admin.model import (
    Call,
    Cdr,
    Destination,
    HeldCallback,
    Leg,
    NodeInfo,
    Quality,
    Registration,
    Room,
)
from callway.admin.server import build_app

TOKEN = "s3cret-token"
Client = TestClient[web.Request, web.Application]
T = TypeVar("T")


@dataclass
class FakeBackend:
    """Holds whatever a test puts in it; records what the API changed."""

    role: str = "pbx"
    regs: list[Registration] = field(default_factory=list)
    active: list[Call] = field(default_factory=list)
    records: list[Cdr] = field(default_factory=list)
    destinations: list[Destination] = field(default_factory=list)
    reload_ok: bool = True
    reloads: int = 0
    state_changes: list[tuple[str, str, int | None]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    held: list[HeldCallback] = field(default_factory=list)
    room_list: list[Room] = field(default_factory=list)
    actions: list[tuple[str, ...]] = field(default_factory=list)
    endpoints: tuple[str, ...] = ("8005", "8006")
    online: tuple[str, ...] = ("8005",)
    streams: list[FakeStream] = field(default_factory=list)
    has_events: bool = True

    def node_info(self) -> NodeInfo:
        return NodeInfo(self.role, "0.test", time.time() - 10, dict(self.counters))

    def registrations(self) -> list[Registration]:
        return list(self.regs)

    def registration_count(self) -> int:
        return len(self.regs)

    def calls(self) -> list[Call]:
        return list(self.active)

    def iter_calls(self) -> Iterator[Call]:
        return iter(list(self.active))

    def cdrs(self, limit: int | None = None, since: float | None = None) -> list[Cdr]:
        chosen = [r for r in self.records if since is None or r.end >= since]
        return chosen[-limit:] if limit else ([] if limit == 0 else chosen)

    def reload(self) -> bool:
        self.reloads += 1
        return self.reload_ok

    def dispatcher_sets(self) -> list[Destination]:
        return list(self.destinations)

    def set_destination_state(self, uri: str, state: str, setid: int | None = None) -> int:
        if state.upper() not in ("AP", "DX", "IP", "TP", "A", "D", "I", "T", "AX", "IX"):
            raise ValueError(f"bad state {state!r}")
        matches = [d for d in self.destinations if d.uri == uri and d.setid == setid]
        if uri != "all" and not matches:
            raise KeyError(uri)
        self.state_changes.append((uri, state, setid))
        return len(matches) or 1

    def held_callbacks(self) -> list[HeldCallback]:
        return list(self.held)

    def rooms(self) -> list[Room]:
        return list(self.room_list)

    def _held(self, uid: str) -> None:
        if uid not in {h.id for h in self.held}:
            raise KeyError(uid)

    def release_callback(self, uid: str) -> None:
        self._held(uid)
        self.actions.append(("release", uid))

    def drop_callback(self, uid: str) -> None:
        self._held(uid)
        self.actions.append(("drop", uid))

    def originate(self, source: str, target: str) -> str:
        for name in (source, target):
            if name not in self.endpoints:
                raise KeyError(name)
        if source not in self.online:
            raise ValueError(f"{source} has no registered contact")
        self.actions.append(("originate", source, target))
        return "0000000a"

    def _member(self, room: str, member: str) -> None:
        if not any(r.name == room and member in r.members for r in self.room_list):
            raise KeyError(member)

    def set_member_muted(self, room: str, member: str, muted: bool) -> None:
        self._member(room, member)
        self.actions.append(("mute" if muted else "unmute", room, member))

    def kick_member(self, room: str, member: str) -> None:
        self._member(room, member)
        self.actions.append(("kick", room, member))

    def start_capture(self, call_id: str) -> tuple[str, str]:
        if call_id not in {c.id for c in self.active}:
            raise KeyError(call_id)
        self.actions.append(("capture", call_id))
        return f"{call_id}@test", f"/tmp/{call_id}.pcap"

    def stop_capture(self, call_id: str) -> str:
        if ("capture", call_id) not in self.actions:
            raise KeyError(call_id)
        self.actions.append(("capture-stop", call_id))
        return f"/tmp/{call_id}.pcap"

    def events(self) -> FakeStream | None:
        if not self.has_events:
            return None
        stream = FakeStream()
        self.streams.append(stream)
        return stream


class FakeStream:
    """Call events a test feeds with :meth:`put`."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed = False

    def put(self, event: dict[str, Any]) -> None:
        self.queue.put_nowait(event)

    async def next(self) -> dict[str, Any]:
        return await self.queue.get()

    def close(self) -> None:
        self.closed = True


def registration(aor: str = "8005") -> Registration:
    now = time.time()
    return Registration(aor, f"sip:{aor}@127.0.0.1:5070", now + 60, 60, "udp:127.0.0.1:5070",
                        "sipp", now)  # fmt: skip


def call(uid: str = "00000001", packets: int = 100, mos: float | None = 4.3) -> Call:
    quality = Quality(0.01, 12.5, 88.0, mos)
    legs = (Leg("a", packets, packets, 160 * packets, 160 * packets, quality=quality),
            Leg("b", packets, packets, quality=Quality()))  # fmt: skip
    return Call(uid, f"PJSIP/8005-{uid}", "8005", "8006", "8006", "up", time.time() - 5,
                time.time() - 4, legs)  # fmt: skip


def cdr(uid: str, disposition: str = "ANSWERED", end: float | None = None) -> Cdr:
    end = time.time() if end is None else end
    return Cdr(uid, "8005", "8006", end - 10, end - 8, end, disposition, 10, 8)


def destination(uri: str = "sip:127.0.0.1:5070", state: str = "AP", setid: int = 1
                ) -> Destination:  # fmt: skip
    return Destination(setid, uri, state, usable=state[0] in "AT")


def with_client(backend: FakeBackend, body: Callable[[Client], Awaitable[T]]) -> T:
    """Run ``body(client)`` against the admin app over a real local socket."""

    async def main() -> T:
        client = TestClient(TestServer(build_app(backend, TOKEN)))
        await client.start_server()
        try:
            return await body(client)
        finally:
            await client.close()

    return asyncio.run(main())


AUTH = {"Authorization": f"Bearer {TOKEN}"}

"""The admin API's actions: held calls, originate, room members, the events WebSocket."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from callway.admin.model import HeldCallback, Room
from callway.app.b2bua.events import EventBus
from tests.unit.admin.fakes import AUTH, TOKEN, Client, FakeBackend, call, with_client


def _backend() -> FakeBackend:
    now = time.time()
    return FakeBackend(
        held=[HeldCallback("00000001", "8005", "8006", now, "waiting", "conference",
                           "callback-00000001", "912345", now + 60)],
        room_list=[Room("callback-00000001", ("00000001", "00000002"), now, ("00000002",),
                        "912345")],
    )  # fmt: skip


def test_release_and_drop_a_held_call() -> None:
    backend = _backend()

    async def body(client: Client) -> None:
        response = await client.post("/api/v1/callbacks/00000001/release", headers=AUTH)
        assert response.status == 200
        assert await response.json() == {"id": "00000001", "released": True}
        response = await client.delete("/api/v1/callbacks/00000001", headers=AUTH)
        assert (response.status, await response.json()) == (
            200, {"id": "00000001", "dropped": True})  # fmt: skip
        for method, path in (("POST", "/api/v1/callbacks/nope/release"),
                             ("DELETE", "/api/v1/callbacks/nope")):  # fmt: skip
            response = await client.request(method, path, headers=AUTH)
            assert response.status == 404
            assert (await response.json())["error"] == "no such held call"
        response = await client.delete("/api/v1/callbacks/00000001")
        assert response.status == 401

    with_client(backend, body)
    assert backend.actions == [("release", "00000001"), ("drop", "00000001")]


def test_callbacks_and_rooms_show_numbers_and_mutes() -> None:
    async def body(client: Client) -> None:
        (held,) = (await (await client.get("/api/v1/callbacks", headers=AUTH)).json())["callbacks"]
        assert (held["mode"], held["number"], held["room"]) == (
            "conference", "912345", "callback-00000001")  # fmt: skip
        (room,) = (await (await client.get("/api/v1/rooms", headers=AUTH)).json())["rooms"]
        assert room["muted"] == ["00000002"] and room["number"] == "912345"

    with_client(_backend(), body)


def test_originate() -> None:
    backend = _backend()

    async def body(client: Client) -> None:
        response = await client.post("/api/v1/originate", json={"from": "8005", "to": "8006"},
                                     headers=AUTH)  # fmt: skip
        assert response.status == 202
        assert await response.json() == {"id": "0000000a", "from": "8005", "to": "8006"}
        cases = [({"from": "8006", "to": "8005"}, 409), ({"from": "8005", "to": "9999"}, 404),
                 ({"from": "8005"}, 400), ({"from": 8005, "to": "8006"}, 400)]  # fmt: skip
        for payload, status in cases:
            response = await client.post("/api/v1/originate", json=payload, headers=AUTH)
            assert response.status == status, payload
        response = await client.post("/api/v1/originate", data=b"not json", headers=AUTH)
        assert response.status == 400

    with_client(backend, body)
    assert backend.actions == [("originate", "8005", "8006")]


def test_mute_unmute_and_kick_a_member() -> None:
    backend = _backend()
    path = "/api/v1/rooms/callback-00000001/members/00000002"

    async def body(client: Client) -> None:
        response = await client.put(path, json={"muted": True}, headers=AUTH)
        assert await response.json() == {"room": "callback-00000001", "member": "00000002",
                                          "muted": True}  # fmt: skip
        response = await client.put(path, json={"muted": False}, headers=AUTH)
        assert response.status == 200
        response = await client.put(path, json={"muted": "yes"}, headers=AUTH)
        assert response.status == 400
        response = await client.delete(path, headers=AUTH)
        assert (await response.json())["kicked"] is True
        response = await client.delete("/api/v1/rooms/x/members/00000002", headers=AUTH)
        assert response.status == 404
        response = await client.put(path + "9", json={"muted": True}, headers=AUTH)
        assert response.status == 404

    with_client(backend, body)
    assert backend.actions == [
        ("mute", "callback-00000001", "00000002"),
        ("unmute", "callback-00000001", "00000002"),
        ("kick", "callback-00000001", "00000002"),
    ]


def test_events_websocket_streams_in_order_and_needs_the_token() -> None:
    backend = _backend()

    async def body(client: Client) -> None:
        response = await client.get("/api/v1/events")
        assert response.status == 401
        async with client.ws_connect(f"/api/v1/events?token={TOKEN}") as ws:
            for _ in range(50):
                if backend.streams:
                    break
                await asyncio.sleep(0.01)
            (stream,) = backend.streams
            for kind in ("call_started", "call_answered", "call_ended"):
                stream.put({"event": kind, "call_id": "00000001"})
            got = [(await ws.receive_json(timeout=2))["event"] for _ in range(3)]
            assert got == ["call_started", "call_answered", "call_ended"]
        for _ in range(50):
            if stream.closed:
                break
            await asyncio.sleep(0.01)
        assert stream.closed, "the subscription is closed when the client leaves"

    with_client(backend, body)


def test_events_on_a_node_without_calls_is_404() -> None:
    async def body(client: Client) -> None:
        response = await client.get("/api/v1/events", headers=AUTH)
        assert response.status == 404

    with_client(FakeBackend(has_events=False), body)


def test_event_bus_fans_out_and_drops_the_oldest_for_a_slow_listener() -> None:
    async def main() -> None:
        bus = EventBus()
        fast, slow = bus.subscribe(), bus.subscribe()
        slow.queue = asyncio.Queue(2)
        for n in range(3):
            bus.emit("call_started", f"{n:08x}", caller="8005")
        assert [(await fast.get()).call_id for _ in range(3)] == [
            "00000000", "00000001", "00000002"]  # fmt: skip
        assert slow.dropped == 1 and (await slow.get()).call_id == "00000001"
        event = (await slow.get()).to_json()
        assert event["event"] == "call_started" and event["caller"] == "8005"
        fast.close()
        slow.close()
        assert bus.subscribers == 0
        bus.emit("call_ended", "x")  # nobody listens: nothing happens

    asyncio.run(main())


def test_ws_client_sees_server_shutdown() -> None:
    """The events socket is closed (1001) when the server shuts down."""

    async def body(client: Client) -> None:
        async with client.ws_connect(f"/api/v1/events?token={TOKEN}") as ws:
            await asyncio.sleep(0.05)
            await client.server.app.shutdown()
            message = await ws.receive(timeout=2)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

    with_client(_backend(), body)


def test_capture_start_and_stop() -> None:
    backend = FakeBackend(active=[call("00000007")])

    async def body(client: Client) -> None:
        path = "/api/v1/calls/00000007/capture"
        response = await client.post(path, headers=AUTH)
        assert (response.status, await response.json()) == (200, {
            "id": "00000007", "call_id": "00000007@test", "path": "/tmp/00000007.pcap",
            "capturing": True})  # fmt: skip
        response = await client.delete(path, headers=AUTH)
        assert (response.status, await response.json()) == (200, {
            "id": "00000007", "path": "/tmp/00000007.pcap", "capturing": False})  # fmt: skip
        for method, missing in (("POST", "/api/v1/calls/nope/capture"),
                                ("DELETE", "/api/v1/calls/nope/capture")):  # fmt: skip
            response = await client.request(method, missing, headers=AUTH)
            assert response.status == 404
        assert (await client.post(path)).status == 401

    with_client(backend, body)
    assert backend.actions == [("capture", "00000007"), ("capture-stop", "00000007")]

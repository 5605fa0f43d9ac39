"""The JSON routes of ``/api/v1/``: thin handlers over an :class:`AdminBackend`.

Each handler reads the backend (a snapshot, on the event loop) and answers
JSON; errors are JSON too (``{"error": ..., "detail": ...}``).  The route
table :data:`ROUTES` is the single list the server registers and the OpenAPI
description is checked against.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from callway.admin.backend import AdminBackend, EventStream
from callway.admin.model import to_json

log = logging.getLogger("callway.admin")

BACKEND_KEY = web.AppKey("backend", AdminBackend)
MAX_CDRS = 10_000
DEFAULT_CDRS = 100


def backend_of(request: web.Request) -> AdminBackend:
    """The backend the application was built with."""
    return request.app[BACKEND_KEY]


def error(status: int, message: str, detail: str = "") -> web.Response:
    """A JSON error answer."""
    return web.json_response({"error": message, "detail": detail}, status=status)


async def health(request: web.Request) -> web.Response:
    """Liveness (no token needed): role, version, uptime."""
    info = backend_of(request).node_info()
    return web.json_response({
        "status": "ok",
        "role": info.role,
        "version": info.version,
        "uptime": round(time.time() - info.started, 1),
    })  # fmt: skip


async def registrations(request: web.Request) -> web.Response:
    """Every live registered contact."""
    return web.json_response({"registrations": to_json(backend_of(request).registrations())})


async def calls(request: web.Request) -> web.Response:
    """Active calls with their legs, media counters and quality."""
    return web.json_response({"calls": to_json(backend_of(request).calls())})


def _number(request: web.Request, name: str, kind: type[int] | type[float]) -> Any:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    try:
        value = kind(text)
    except ValueError:
        value = -1
    if not value >= 0:  # also refuses NaN
        detail = f"{name} must be a non-negative number"
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "bad query parameter", "detail": detail}),
            content_type="application/json",
        )
    return value


async def cdrs(request: web.Request) -> web.Response:
    """Finished calls: ``?limit=N`` (default 100) ``&since=UNIX_TIME`` (ended at or after)."""
    limit = _number(request, "limit", int)
    since = _number(request, "since", float)
    limit = DEFAULT_CDRS if limit is None else min(limit, MAX_CDRS)
    records = backend_of(request).cdrs(limit=limit, since=since)
    return web.json_response({"cdrs": to_json(records)})


async def reload(request: web.Request) -> web.Response:
    """Re-read the configuration; 422 when it is broken (the old one stays in force)."""
    if backend_of(request).reload():
        return web.json_response({"reloaded": True})
    return web.json_response(
        {"reloaded": False, "error": "reload failed", "detail": "see the node's log"}, status=422
    )


async def dispatcher(request: web.Request) -> web.Response:
    """Dispatcher sets and the live state of each destination."""
    sets: dict[int, list[Any]] = {}
    for dest in backend_of(request).dispatcher_sets():
        sets.setdefault(dest.setid, []).append(to_json(dest))
    return web.json_response(
        {"sets": [{"setid": setid, "destinations": dests} for setid, dests in sets.items()]}
    )


async def set_destination_state(request: web.Request) -> web.Response:
    """``PUT .../destinations/{uri}/state`` with ``{"state": "DX"}`` (Kamailio's set_state)."""
    try:
        setid = int(request.match_info["setid"])
    except ValueError:
        return error(400, "bad set id", request.match_info["setid"])
    uri = request.match_info["uri"]
    try:
        body = await request.json()
    except ValueError:
        return error(400, "bad body", 'expected JSON {"state": "AP"}')
    state = body.get("state") if isinstance(body, dict) else None
    if not isinstance(state, str):
        return error(400, "bad body", 'expected JSON {"state": "AP"}')
    try:
        changed = backend_of(request).set_destination_state(uri, state, setid)
    except KeyError:
        return error(404, "no such destination", f"{uri} in set {setid}")
    except ValueError as exc:
        return error(400, "bad state", str(exc))
    log.info("admin API: destination %s of set %d set to %s", uri, setid, state)
    return web.json_response({"setid": setid, "uri": uri, "state": state, "changed": changed})


async def callbacks(request: web.Request) -> web.Response:
    """Callers held until their callee comes online."""
    return web.json_response({"callbacks": to_json(backend_of(request).held_callbacks())})


async def rooms(request: web.Request) -> web.Response:
    """Conference rooms in use."""
    return web.json_response({"rooms": to_json(backend_of(request).rooms())})


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    """The request's JSON object, or None when it is not one."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def release_callback(request: web.Request) -> web.Response:
    """``POST /callbacks/{id}/release``: stop waiting, try the callee's contacts now."""
    uid = request.match_info["id"]
    try:
        backend_of(request).release_callback(uid)
    except KeyError:
        return error(404, "no such held call", uid)
    log.info("admin API: held call %s released", uid)
    return web.json_response({"id": uid, "released": True})


async def drop_callback(request: web.Request) -> web.Response:
    """``DELETE /callbacks/{id}``: end the wait; the caller is hung up."""
    uid = request.match_info["id"]
    try:
        backend_of(request).drop_callback(uid)
    except KeyError:
        return error(404, "no such held call", uid)
    log.info("admin API: held call %s dropped", uid)
    return web.json_response({"id": uid, "dropped": True})


async def originate(request: web.Request) -> web.Response:
    """``POST /originate`` ``{"from": A, "to": B}``: call A, then B, bridge (202)."""
    body = await _json_body(request)
    source = body.get("from") if body is not None else None
    target = body.get("to") if body is not None else None
    if not isinstance(source, str) or not isinstance(target, str) or not source or not target:
        return error(400, "bad body", 'expected JSON {"from": "8005", "to": "8006"}')
    try:
        uid = backend_of(request).originate(source, target)
    except KeyError as exc:
        return error(404, "no such endpoint", str(exc.args[0]) if exc.args else "")
    except ValueError as exc:
        return error(409, "cannot originate", str(exc))
    log.info("admin API: originate %s -> %s (%s)", source, target, uid)
    return web.json_response({"id": uid, "from": source, "to": target}, status=202)


async def set_member(request: web.Request) -> web.Response:
    """``PUT /rooms/{name}/members/{id}`` ``{"muted": true}``."""
    room, member = request.match_info["name"], request.match_info["id"]
    body = await _json_body(request)
    muted = body.get("muted") if body is not None else None
    if not isinstance(muted, bool):
        return error(400, "bad body", 'expected JSON {"muted": true}')
    try:
        backend_of(request).set_member_muted(room, member, muted)
    except KeyError:
        return error(404, "no such room member", f"{member} in {room}")
    log.info("admin API: %s in room %s %s", member, room, "muted" if muted else "unmuted")
    return web.json_response({"room": room, "member": member, "muted": muted})


async def kick_member(request: web.Request) -> web.Response:
    """``DELETE /rooms/{name}/members/{id}``: the member leaves, its call gets a BYE."""
    room, member = request.match_info["name"], request.match_info["id"]
    try:
        backend_of(request).kick_member(room, member)
    except KeyError:
        return error(404, "no such room member", f"{member} in {room}")
    log.info("admin API: %s kicked from room %s", member, room)
    return web.json_response({"room": room, "member": member, "kicked": True})


async def start_capture(request: web.Request) -> web.Response:
    """``POST /calls/{call_id}/capture``: the call's SIP messages into a pcap file from now on."""
    ref = request.match_info["call_id"]
    try:
        call_id, path = backend_of(request).start_capture(ref)
    except KeyError:
        return error(404, "no such call", ref)
    except ValueError as exc:
        return error(409, "cannot capture", str(exc))
    log.info("admin API: capturing call %s to %s", call_id, path)
    return web.json_response({"id": ref, "call_id": call_id, "path": path, "capturing": True})


async def stop_capture(request: web.Request) -> web.Response:
    """``DELETE /calls/{call_id}/capture``: stop it; the file stays."""
    ref = request.match_info["call_id"]
    try:
        path = backend_of(request).stop_capture(ref)
    except KeyError:
        return error(404, "no capture of this call", ref)
    log.info("admin API: capture of call %s stopped: %s", ref, path)
    return web.json_response({"id": ref, "path": path, "capturing": False})


EVENT_SOCKETS = web.AppKey("event_sockets", set[web.WebSocketResponse])


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /events`` (WebSocket): one JSON text message per call event."""
    stream = backend_of(request).events()
    if stream is None:
        return error(404, "no call events on this node")
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    sockets = request.app[EVENT_SOCKETS]
    sockets.add(ws)
    closed = asyncio.ensure_future(_until_closed(ws))
    try:
        await _pump_events(ws, stream, closed)
    finally:
        closed.cancel()
        stream.close()
        sockets.discard(ws)
    return ws


async def _until_closed(ws: web.WebSocketResponse) -> None:
    async for msg in ws:  # the client sends nothing; this waits for it to leave
        if msg.type == WSMsgType.ERROR:
            break


async def _pump_events(ws: web.WebSocketResponse, stream: EventStream,
                       closed: asyncio.Future[None]) -> None:  # fmt: skip
    while not ws.closed:
        following = asyncio.ensure_future(stream.next())
        waits: set[asyncio.Future[Any]] = {following, closed}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not following.done():
            following.cancel()
            return
        try:
            await ws.send_str(json.dumps(following.result()))
        except (ConnectionError, RuntimeError):
            return


Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]

PREFIX = "/api/v1"
DESTINATION_STATE = PREFIX + "/dispatcher/{setid}/destinations/{uri}/state"

#: (method, path, handler) of every JSON route.
ROUTES: tuple[Route, ...] = (
    ("GET", PREFIX + "/health", health),
    ("GET", PREFIX + "/registrations", registrations),
    ("GET", PREFIX + "/calls", calls),
    ("POST", PREFIX + "/calls/{call_id}/capture", start_capture),
    ("DELETE", PREFIX + "/calls/{call_id}/capture", stop_capture),
    ("GET", PREFIX + "/cdrs", cdrs),
    ("POST", PREFIX + "/reload", reload),
    ("GET", PREFIX + "/dispatcher", dispatcher),
    ("PUT", DESTINATION_STATE, set_destination_state),
    ("GET", PREFIX + "/callbacks", callbacks),
    ("POST", PREFIX + "/callbacks/{id}/release", release_callback),
    ("DELETE", PREFIX + "/callbacks/{id}", drop_callback),
    ("POST", PREFIX + "/originate", originate),
    ("GET", PREFIX + "/rooms", rooms),
    ("PUT", PREFIX + "/rooms/{name}/members/{id}", set_member),
    ("DELETE", PREFIX + "/rooms/{name}/members/{id}", kick_member),
    ("GET", PREFIX + "/events", events),
)

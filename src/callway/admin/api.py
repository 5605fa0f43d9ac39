"""The JSON routes of ``/api/v1/``: thin handlers over an :class:`AdminBackend`.

Each handler reads the backend (a snapshot, on the event loop) and answers
JSON; errors are JSON too (``{"error": ..., "detail": ...}``).  The route
table :data:`ROUTES` is the single list the server registers and the OpenAPI
description is checked against.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from callway.admin.backend import AdminBackend
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


Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]

PREFIX = "/api/v1"
DESTINATION_STATE = PREFIX + "/dispatcher/{setid}/destinations/{uri}/state"

#: (method, path, handler) of every JSON route.
ROUTES: tuple[Route, ...] = (
    ("GET", PREFIX + "/health", health),
    ("GET", PREFIX + "/registrations", registrations),
    ("GET", PREFIX + "/calls", calls),
    ("GET", PREFIX + "/cdrs", cdrs),
    ("POST", PREFIX + "/reload", reload),
    ("GET", PREFIX + "/dispatcher", dispatcher),
    ("PUT", DESTINATION_STATE, set_destination_state),
    ("GET", PREFIX + "/callbacks", callbacks),
    ("GET", PREFIX + "/rooms", rooms),
)

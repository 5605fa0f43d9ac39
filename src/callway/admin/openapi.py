"""The OpenAPI 3.1 description of the admin server, written by hand.

It is served at ``/openapi.json``; a unit test checks that it lists exactly
the routes the server registers and that its schemas name the fields of the
snapshots in :mod:`callway.admin.model`.
"""

from __future__ import annotations

from typing import Any

from callway import __version__

JSON = "application/json"


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required if required is not None else list(properties),
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(key: str, schema: str) -> dict[str, Any]:
    return _obj({key: {"type": "array", "items": _ref(schema)}})


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _get(summary: str, key: str, schema: str, **extra: Any) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {
                "200": _ok(summary, _list_of(key, schema)),
                "401": _ref_response("Unauthorized"),
            },
            **extra,
        }
    }


def _ref_response(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _action(summary: str, key: str, schema: dict[str, Any], missing: str, *, room: bool = False
            ) -> dict[str, Any]:  # fmt: skip
    """An operation on one object named in the path (``{key}``, and ``{name}`` for rooms)."""
    params = [{"name": key, "in": "path", "required": True, "schema": {"type": "string"}}]
    if room:
        params.insert(0, {"name": "name", "in": "path", "required": True,
                          "schema": {"type": "string"}})  # fmt: skip
    return {
        "summary": summary,
        "parameters": params,
        "responses": {
            "200": _ok(summary, schema),
            "401": _ref_response("Unauthorized"),
            "404": {"description": missing, "content": {JSON: {"schema": _ref("Error")}}},
        },
    }


NUM, INT, STR, BOOL = ({"type": t} for t in ("number", "integer", "string", "boolean"))

# fmt: off
SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": STR, "detail": STR}, ["error"]),
    "Health": _obj({"status": STR, "role": STR, "version": STR, "uptime": NUM}),
    "Registration": _obj({
        "aor": STR, "uri": STR, "expires_at": NUM, "expires_in": INT,
        "source": {**STR, "description": "transport:host:port the REGISTER came from"},
        "user_agent": STR, "registered_at": _nullable("number"),
    }),
    "Quality": _obj({
        "loss": {**_nullable("number"), "description": "fraction lost, 0..1 (RFC 3550)"},
        "jitter_ms": {**_nullable("number"), "description": "RFC 3550 interarrival jitter"},
        "r_factor": {**_nullable("number"), "description": "ITU-T G.107 E-model R"},
        "mos": {**_nullable("number"), "description": "estimated MOS, 1..4.5"},
    }),
    "Leg": _obj({
        "name": STR, "packets_in": INT, "packets_out": INT, "bytes_in": INT, "bytes_out": INT,
        "dropped": INT, "remote": _nullable("string"), "latched": BOOL,
        "last_packet_age": _nullable("number"), "quality": _ref("Quality"),
    }),
    "Call": _obj({
        "id": STR, "name": STR, "caller": STR, "exten": STR, "peer": STR,
        "state": {"type": "string", "enum": ["ringing", "up"]},
        "started": NUM, "answered_at": _nullable("number"),
        "legs": {"type": "array", "items": _ref("Leg")},
        "mos": {**_nullable("number"), "description": "the worst leg's MOS"},
    }),
    "Cdr": _obj({
        "uniqueid": STR, "src": STR, "dst": STR, "start": NUM, "answer": _nullable("number"),
        "end": NUM, "disposition": {"type": "string",
                                    "examples": ["ANSWERED", "NO ANSWER", "BUSY", "FAILED"]},
        "duration": INT, "billsec": INT,
        "clid": {**STR, "description": 'caller ID: "name" <number>'},
        "channel": {**STR, "examples": ["PJSIP/8005-00000001"]},
        "dstchannel": {**STR, "description": "the answering callee's channel"},
        "lastapp": {**STR, "examples": ["Dial"]}, "lastdata": {**STR, "examples": ["PJSIP/8006"]},
        "dcontext": STR, "accountcode": STR,
    }),
    "Destination": _obj({
        "setid": INT, "uri": STR,
        "state": {**STR, "description": "Kamailio state letters: AP, IP, DX, TX ..."},
        "usable": BOOL, "priority": INT, "probes_sent": INT, "probes_ok": INT,
        "probes_failed": INT, "request_failures": INT, "last_status": _nullable("integer"),
        "last_change": _nullable("number"),
    }),
    "DispatcherSet": _obj(
        {"setid": INT, "destinations": {"type": "array", "items": _ref("Destination")}}
    ),
    "HeldCallback": _obj({
        "id": STR, "caller": STR, "callee": STR, "since": NUM,
        "state": {"type": "string", "enum": ["waiting", "connected", "timeout", "dropped"]},
        "mode": {"type": "string", "enum": ["hold", "conference"]},
        "room": _nullable("string"),
        "number": {**_nullable("string"), "description": "dial it to join the room"},
        "expires_at": _nullable("number"),
    }),
    "Room": _obj({
        "name": STR, "members": {"type": "array", "items": STR}, "since": NUM,
        "muted": {"type": "array", "items": STR},
        "number": {**_nullable("string"), "description": "join number of a callback room"},
    }),
    "CallEvent": {**_obj({
        "event": {"type": "string", "enum": [
            "call_started", "call_answered", "call_ended", "callback_held",
            "callback_connected", "callback_timeout", "callback_dropped", "room_joined",
            "room_left"]},
        "call_id": {**STR, "description": "the call's uniqueid (its CDR's)"},
        "time": NUM, "caller": STR, "exten": STR,
        "disposition": {**STR, "description": "call_ended: ANSWERED, NO ANSWER, BUSY, FAILED"},
        "callee": STR, "room": _nullable("string"), "member": STR,
    }, ["event", "call_id", "time"]), "additionalProperties": True},
    "Snapshot": _obj({
        "time": NUM, "node": _ref("Health"),
        "calls": {"type": "array", "items": _ref("Call")},
        "registrations": {"type": "array", "items": _ref("Registration")},
        "dispatcher": {"type": "array", "items": _ref("DispatcherSet")},
    }),
}

_ERROR = {"content": {JSON: {"schema": _ref("Error")}}}

PATHS: dict[str, Any] = {
    "/": {"get": {"summary": "The dashboard (HTML; give the token as #token=... in the URL)",
                  "security": [],
                  "responses": {"200": {"description": "HTML page",
                                        "content": {"text/html": {}}}}}},
    "/openapi.json": {"get": {"summary": "This description", "security": [],
                              "responses": {"200": _ok("OpenAPI 3.1", {"type": "object"})}}},
    "/metrics": {"get": {
        "summary": "Prometheus metrics (callway_*)",
        "responses": {"200": {"description": "text exposition format",
                              "content": {"text/plain": {}}},
                      "401": _ref_response("Unauthorized")},
    }},
    "/api/v1/health": {"get": {"summary": "Liveness", "security": [],
                               "responses": {"200": _ok("Node is up", _ref("Health"))}}},
    "/api/v1/registrations": _get("Registered contacts", "registrations", "Registration"),
    "/api/v1/calls": _get("Active calls with legs and quality", "calls", "Call"),
    "/api/v1/calls/{call_id}/capture": {
        "post": {**_action(
            "Capture the call's SIP messages from now on (caller's and callee legs' dialogs) "
            "into a pcap file; it stops by itself shortly after the call ends", "call_id",
            _obj({"id": STR, "call_id": {**STR, "description": "the caller's Call-ID"},
                  "path": {**STR, "description": "the pcap file on the node"},
                  "capturing": BOOL}),
            "No such live call"),
            "description": "call_id: the call's id from /api/v1/calls, or one of its Call-IDs"},
        "delete": _action("Stop the call's capture (the file stays)", "call_id",
                          _obj({"id": STR, "path": STR, "capturing": BOOL}),
                          "No capture of this call is running"),
    },
    "/api/v1/cdrs": _get("Finished calls, oldest first", "cdrs", "Cdr", parameters=[
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                   "default": 100, "maximum": 10000}},
        {"name": "since", "in": "query", "description": "Unix time: calls that ended since",
         "schema": {"type": "number", "minimum": 0}},
    ]),
    "/api/v1/reload": {"post": {
        "summary": "Re-read the configuration",
        "responses": {"200": _ok("Reloaded", _obj({"reloaded": BOOL})),
                      "401": _ref_response("Unauthorized"),
                      "422": {"description": "Broken config; the old one stays", **_ERROR}},
    }},
    "/api/v1/dispatcher": _get("Dispatcher sets and states", "sets", "DispatcherSet"),
    "/api/v1/dispatcher/{setid}/destinations/{uri}/state": {"put": {
        "summary": "Set a destination's state (DX drains it, AP restores it with probing)",
        "parameters": [
            {"name": "setid", "in": "path", "required": True, "schema": INT},
            {"name": "uri", "in": "path", "required": True, "schema": STR,
             "description": "destination URI, percent-encoded (sip%3A10.0.0.1%3A5060), or all"},
        ],
        "requestBody": {"required": True, "content": {JSON: {"schema": _obj(
            {"state": {"type": "string", "pattern": "^[AaIiDdTt][PpXx]?$"}})}}},
        "responses": {
            "200": _ok("State set", _obj({"setid": INT, "uri": STR, "state": STR,
                                          "changed": INT})),
            "400": {"description": "Bad state letters or body", **_ERROR},
            "401": _ref_response("Unauthorized"),
            "404": {"description": "No such destination", **_ERROR},
        },
    }},
    "/api/v1/callbacks": _get("Held callbacks", "callbacks", "HeldCallback"),
    "/api/v1/callbacks/{id}": {"delete": _action(
        "Drop a held call: the caller gets 480 (or BYE once answered)", "id",
        _obj({"id": STR, "dropped": BOOL}), "No such held call",
    )},
    "/api/v1/callbacks/{id}/release": {"post": _action(
        "Release a held call: try the callee's contacts now (none: DIALSTATUS NOANSWER)",
        "id", _obj({"id": STR, "released": BOOL}), "No such held call",
    )},
    "/api/v1/originate": {"post": {
        "summary": "Originate a callback: call A's contacts; when A answers, dial B and "
                   "bridge (B offline and push-capable: the callback hold applies)",
        "requestBody": {"required": True, "content": {JSON: {"schema": _obj(
            {"from": {**STR, "description": "endpoint A, called first"},
             "to": {**STR, "description": "endpoint B, dialled once A answers"}})}}},
        "responses": {
            "202": _ok("Calling A", _obj({"id": STR, "from": STR, "to": STR})),
            "400": {"description": "Bad body", **_ERROR},
            "401": _ref_response("Unauthorized"),
            "404": {"description": "No such endpoint", **_ERROR},
            "409": {"description": "A has no registered contact", **_ERROR},
        },
    }},
    "/api/v1/rooms": _get("Conference rooms", "rooms", "Room"),
    "/api/v1/rooms/{name}/members/{id}": {
        "put": {**_action("Mute or unmute a room member", "id",
                          _obj({"room": STR, "member": STR, "muted": BOOL}),
                          "No such room or member", room=True),
                "requestBody": {"required": True, "content": {JSON: {"schema": _obj(
                    {"muted": BOOL})}}}},
        "delete": _action("Kick a room member (its call gets a BYE)", "id",
                          _obj({"room": STR, "member": STR, "kicked": BOOL}),
                          "No such room or member", room=True),
    },
    "/api/v1/events": {"get": {
        "summary": "WebSocket: one CallEvent (JSON text message) per call step, in order",
        "parameters": [{"name": "token", "in": "query", "schema": STR,
                        "description": "the token (WebSocket clients may not set the header)"}],
        "responses": {"101": {"description": "Switching to WebSocket; messages are CallEvent",
                              "content": {JSON: {"schema": _ref("CallEvent")}}},
                      "401": _ref_response("Unauthorized"),
                      "404": {"description": "This node has no calls (a balancer)", **_ERROR}},
    }},
    "/api/v1/live": {"get": {
        "summary": "WebSocket: a Snapshot (JSON text message) every second",
        "parameters": [{"name": "token", "in": "query", "schema": STR,
                        "description": "the token (browsers cannot set the header)"}],
        "responses": {"101": {"description": "Switching to WebSocket; messages are Snapshot",
                              "content": {JSON: {"schema": _ref("Snapshot")}}},
                      "401": _ref_response("Unauthorized")},
    }},
}
# fmt: on
PATHS["/api/v1/calls/{call_id}/capture"]["post"]["responses"]["409"] = {
    "description": "Too many captures running",
    **_ERROR,
}


def openapi() -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callway admin API",
            "version": __version__,
            "description": "Registrations, calls, CDRs, dispatcher states, reload, "
            "metrics, held callbacks, conference rooms and call events of one callway "
            "node (PBX or balancer).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "responses": {"Unauthorized": {"description": "No or wrong token", **_ERROR}},
        },
    }

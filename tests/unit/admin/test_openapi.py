"""The OpenAPI description matches the routes and the snapshot fields."""

from __future__ import annotations

import dataclasses
from typing import Any

from callway.admin import model
from callway.admin.openapi import openapi
from callway.admin.server import build_app
from tests.unit.admin.fakes import TOKEN, Client, FakeBackend, with_client


def _registered_routes() -> set[tuple[str, str]]:
    app = build_app(FakeBackend(), TOKEN)
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        found.add((route.method.lower(), str(path)))
    return found


def _described_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


def test_every_route_is_described_and_every_description_is_routed() -> None:
    assert _registered_routes() == _described_routes(openapi())


def test_document_shape() -> None:
    doc = openapi()
    assert doc["openapi"].startswith("3.1")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    public = {p for p, item in doc["paths"].items() for op in item.values()
              if op.get("security") == []}  # fmt: skip
    assert public == {"/", "/openapi.json", "/api/v1/health"}


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if "$ref" in value else set()
        for item in value.values():
            found |= _refs(item)
        return found
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value)) if value else set()
    return set()


def test_every_reference_resolves() -> None:
    doc = openapi()
    for ref in _refs(doc):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref


def test_schemas_name_the_snapshot_fields() -> None:
    schemas = openapi()["components"]["schemas"]
    for cls in (model.Registration, model.Quality, model.Leg, model.Cdr, model.Destination,
                model.HeldCallback, model.Room):  # fmt: skip
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(schemas[cls.__name__]["properties"]) == names, cls.__name__
    call_fields = {f.name for f in dataclasses.fields(model.Call)} | {"mos"}
    assert set(schemas["Call"]["properties"]) == call_fields


def test_served_at_openapi_json_without_token() -> None:
    async def body(client: Client) -> None:
        response = await client.get("/openapi.json")
        assert response.status == 200
        assert await response.json() == openapi()

    with_client(FakeBackend(), body)

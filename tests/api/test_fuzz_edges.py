"""The inputs that crashed the server before: NUL bytes and huge integers, in every path parameter,
query parameter and JSON field of every route (REST, pages and websockets), from the app's own route
table and OpenAPI document. No answer is a 500; every /api/ error is vmdeck's JSON shape.

Deterministic (no Hypothesis): each route gets the same short list of bad values, so a regression
names the route and the value.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from webapi_helpers import AppFactory, sign_in

from vmdeck.api.policy import ROUTE_ACTIONS

BAD_TEXT = ("a\x00b", "\x00", "x\x00" * 40)
BAD_NUMBERS = ("1" * 23, "-" + "9" * 30, "99999999999999999999.5")
BAD_JSON_NUMBERS: tuple[Any, ...] = (10**23, -(10**30), 1e308)


@pytest.fixture
def edge_app(make_app: AppFactory) -> tuple[FastAPI, TestClient]:
    app = make_app(events=False)
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    client.headers["X-CSRF-Token"] = sign_in(client)
    assert client.post("/api/vms", json={"name": "edge-vm", "template": "q35-virtio"}).status_code == 201
    return app, client


def _check(method: str, url: str, status: int, body: bytes, content_type: str) -> None:
    assert status != 500, f"{method} {url!r} -> 500: {body[:300]!r}"
    if url.startswith("/api/") and status >= 400 and "json" in content_type:
        import json

        parsed = json.loads(body)
        assert set(parsed) == {"error", "kind", "detail", "field"}, (method, url, parsed)


def _paths() -> list[tuple[str, str, list[str]]]:
    # The policy table names every route of the app, websockets and pages included (tests/api/test_policy.py).
    found = []
    for key in ROUTE_ACTIONS:
        method, path = key.split(" ", 1)
        if "{" in path:
            found.append((method, path, re.findall(r"{(\w+)(?::\w+)?}", path)))
    return found


def test_nul_and_huge_numbers_in_paths_never_crash(edge_app: tuple[FastAPI, TestClient]) -> None:
    _app, client = edge_app
    routes = _paths()
    assert len(routes) >= 25, routes  # the walk really covers the API
    for method, template, params in routes:
        if template.startswith("/static"):
            continue
        for bad in (*BAD_TEXT, *BAD_NUMBERS):
            url = template
            for param in params:
                # The other parameters name something that exists, so the bad one is what is judged.
                value = bad if param == params[-1] else "edge-vm"
                url = re.sub(r"\{" + param + r"(?::\w+)?\}", quote(value, safe=""), url)
            if method == "WS":
                try:
                    with client.websocket_connect(url):
                        pass
                except WebSocketDisconnect as closed:
                    assert closed.code != 1011 or "internal" not in (closed.reason or ""), (url, closed)
                continue
            reply = client.request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)
            _check(method, url, reply.status_code, reply.content, reply.headers.get("content-type", ""))


def _operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    spec = client.get("/api/openapi.json").json()
    ops = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            ops.append((method.upper(), path, op))
    return ops


def _schema_of(spec_components: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    ref = schema.get("$ref")
    if ref:
        schema = spec_components[ref.rsplit("/", 1)[-1]]
    return schema


def test_nul_and_huge_numbers_in_queries_and_bodies_never_crash(edge_app: tuple[FastAPI, TestClient]) -> None:
    _app, client = edge_app
    spec = client.get("/api/openapi.json").json()
    components = spec.get("components", {}).get("schemas", {})
    calls = 0
    for method, path, op in _operations(client):
        if path in ("/api/auth/logout", "/api/auth/password") or (method == "DELETE" and "tokens" in path):
            continue  # keep this client signed in
        url = re.sub(r"{name}", "edge-vm", path)
        url = re.sub(r"{\w+}", "x", url)
        queries = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
        for query in queries:
            for bad in (*BAD_TEXT, *BAD_NUMBERS):
                reply = client.request(method, url, params={query: bad})
                calls += 1
                _check(method, f"{url}?{query}=", reply.status_code, reply.content,
                       reply.headers.get("content-type", ""))
        schema = _schema_of(components, op)
        fields = schema.get("properties", {})
        for field in fields:
            for bad in (*BAD_TEXT, *BAD_JSON_NUMBERS):
                body = {"name": "edge-new", "template": "q35-virtio", field: bad}
                reply = client.request(method, url, json=body)
                calls += 1
                _check(method, f"{url} {field}={bad!r}", reply.status_code, reply.content,
                       reply.headers.get("content-type", ""))
                if reply.status_code < 300 and method == "POST" and url == "/api/vms":
                    client.delete("/api/vms/edge-new")
    assert calls >= 200, calls


def test_a_nul_is_refused_with_a_one_line_error(edge_app: tuple[FastAPI, TestClient]) -> None:
    _app, client = edge_app
    path = client.get("/api/vms/a%00b")
    assert path.status_code == 400 and "NUL" in path.json()["detail"]
    page = client.get("/vms/a%00b")
    assert page.status_code == 400
    body = client.post("/api/vms/edge-vm/snapshots", json={"name": "s1", "description": "a\x00b"})
    assert body.status_code == 422 and body.json()["field"] == "description"
    token = client.delete("/api/auth/tokens/" + "1" * 23)
    assert token.status_code == 422 and token.json()["field"] == "token_id"

"""Requests on the local socket (vmdeck.api.local_socket), in-process on libvirt's test driver.

uvicorn tells the app which listener accepted a connection through the ASGI scope's `server`: a Unix
socket's path and no port. `on_socket` gives the app exactly that scope, so these tests exercise the
app's own decision, while tests/integration/test_cli_handoff.py runs the real server and command.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from webapi_helpers import AppFactory

from vmdeck.local_socket import CONTEXT_HEADER, USER_HEADER, context

Scope = MutableMapping[str, Any]


def on_socket(app: FastAPI, path: Path) -> Callable[[Scope, Any, Any], Awaitable[None]]:
    async def accepted_on_socket(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "server": (str(path), None), "client": None}
        await app(scope, receive, send)

    return accepted_on_socket


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    return tmp_path / "web" / "vmdeck.sock"


@pytest.fixture
def app(make_app: AppFactory, socket_path: Path) -> FastAPI:
    return make_app(local_socket=socket_path)


@pytest.fixture
def local(app: FastAPI, socket_path: Path) -> Iterator[TestClient]:
    """The command's requests: through the socket, with its context and user, and no credentials at all."""
    with TestClient(on_socket(app, socket_path), base_url="http://localhost") as client:  # type: ignore[arg-type]
        client.headers[CONTEXT_HEADER] = context(None)
        client.headers[USER_HEADER] = b"alice".hex()
        yield client


def test_the_socket_acts_as_the_host_administrator_and_the_audit_names_the_user(local: TestClient,
                                                                              app: FastAPI) -> None:
    created = local.post("/api/vms", json={"name": "cmd1", "template": "q35-virtio", "project": "lab"})
    assert created.status_code == 201, created.text  # no session, no CSRF token, no API token
    assert local.post("/api/vms/cmd1/start", json={}).json()["state"] == "running"
    listed = {vm["name"]: vm for vm in local.get("/api/vms").json()}
    assert listed["cmd1"]["project"] == "lab" and listed["cmd1"]["state"] == "running"
    trail = [(e["user"], e["via"], e["action"], e["vm"], e["status"])
             for e in app.state.ctx.audit.entries(None, limit=5)]
    assert ("alice", "cli-socket", "vm.create", "cmd1", 201) in trail
    assert ("alice", "cli-socket", "vm.power", "cmd1", 200) in trail


def test_errors_come_back_with_their_status(local: TestClient) -> None:
    assert local.post("/api/vms/nosuch/start", json={}).status_code == 404
    reply = local.post("/api/vms", json={"name": "bad name!", "template": "q35-virtio"})
    assert reply.status_code == 422 and reply.json()["kind"] == "invalid_input"


def test_another_context_is_declined_and_only_vm_routes_are_served(local: TestClient) -> None:
    reply = local.get("/api/vms", headers={CONTEXT_HEADER: "00"})
    assert reply.status_code == 412 and reply.json()["kind"] == "handoff_declined"
    del local.headers[CONTEXT_HEADER]
    assert local.get("/api/vms").status_code == 412
    local.headers[CONTEXT_HEADER] = context(None)
    for method, path in (("GET", "/api/auth/tokens"), ("GET", "/api/audit"), ("POST", "/api/projects")):
        assert local.request(method, path, json={}).status_code == 403, path


def test_the_same_requests_over_tcp_still_need_credentials(app: FastAPI) -> None:
    with TestClient(app) as tcp:
        tcp.headers[CONTEXT_HEADER] = context(None)
        tcp.headers[USER_HEADER] = b"root".hex()
        assert tcp.get("/api/vms").status_code == 401
        assert tcp.post("/api/vms", json={"name": "x", "template": "q35-virtio"}).status_code == 401


def test_without_a_socket_configured_a_socket_scope_is_nobody(make_app: AppFactory, socket_path: Path) -> None:
    with TestClient(on_socket(make_app(), socket_path), base_url="http://localhost") as client:  # type: ignore[arg-type]
        client.headers[CONTEXT_HEADER] = context(None)
        assert client.get("/api/vms").status_code == 401


def test_several_hosts_are_served_too_and_the_silent_ones_named(tmp_path: Path) -> None:
    """Through the use cases, the socket serves the command whatever hosts are registered: a list of every
    host (one that does not answer named in X-Vmdeck-Unreachable), a start on the VM's own host."""
    from testdriver import fake_host_uri
    from vmdeck.api import Settings, create_app
    from vmdeck.api.events import ensure_event_loop
    from vmdeck.cluster.registry import HostEntry, Registry

    ensure_event_loop()
    db = tmp_path / "web" / "vmdeck.sqlite"
    registry = Registry(db)
    registry.remove("local")
    registry.add(HostEntry("a", fake_host_uri(tmp_path, "a")))
    registry.add(HostEntry("b", fake_host_uri(tmp_path, "b")))
    registry.add(HostEntry("gone", "qemu+tcp://127.0.0.1:1/system"))
    sock = tmp_path / "web" / "vmdeck.sock"
    app = create_app(Settings(db_path=db, local_socket=sock, allowed_hosts=("localhost", "testserver")))
    with TestClient(on_socket(app, sock), base_url="http://localhost") as local:  # type: ignore[arg-type]
        local.headers[CONTEXT_HEADER] = context(None)
        local.headers[USER_HEADER] = b"root".hex()
        listed = local.get("/api/vms")
        assert listed.status_code == 200, listed.text
        assert sorted((vm["name"], vm["host"]) for vm in listed.json()) == [("busy-a", "a"), ("busy-b", "b")]
        assert list(json.loads(listed.headers["x-vmdeck-unreachable"])) == ["gone"]
        assert local.post("/api/vms/busy-b/poweroff").json()["state"] == "shut off"
        assert local.post("/api/vms/busy-b/start", json={}).json()["state"] == "running"

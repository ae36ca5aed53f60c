"""Open websockets end when their caller loses access: the event stream and the VNC console, each
closed (1008, "access revoked") within seconds of each kind of revocation: the token revoked, a
sign-out, a password change, leaving the project, a lower role, the user disabled elsewhere (root's
CLI: seen by the periodic re-check), and a token revoked on another server sharing the database.
The serial console, which libvirt's test driver cannot open, is tests/integration/test_console_revocation.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from tenancy_helpers import PASSWORD, World, add_user
from webapi_helpers import AppFactory, greeting_server

from vmdeck.api.revocation import RECHECK_S
from vmdeck.host.connection import Host

KINDS = ("token", "sign-out", "password", "leave", "role", "disabled", "other-server")
# The close itself is awaited; the bound only keeps a broken build from hanging. Generous for a loaded
# machine: the periodic re-check runs every RECHECK_S.
CLOSED_WITHIN_S = RECHECK_S * 6
GREETING = b"RFB 003.008\n"


@pytest.fixture
def fake_vnc() -> Iterator[int]:
    with greeting_server(GREETING) as port:
        yield port


@pytest.fixture
def world(client: TestClient) -> World:
    # Lean: the two projects and the users these tests need, no VMs (the console makes its own).
    for project in ("alpha", "beta"):
        assert client.post("/api/projects", json={"name": project, "quota": {}}).status_code == 201
    add_user(client, "alpha-operator", "alpha", "operator")
    add_user(client, "alpha-viewer", "alpha", "viewer")
    return World(client.app, client)  # type: ignore[arg-type]


def _closed_code(receive: Callable[[], Any]) -> int:
    """Receive until the server closes; its close code. Fails if it stays open past CLOSED_WITHIN_S."""
    def until_closed() -> int:
        while True:
            try:
                receive()
            except WebSocketDisconnect as closed:
                return closed.code

    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(until_closed).result(timeout=CLOSED_WITHIN_S)
    finally:
        pool.shutdown(wait=False)  # a socket left open must fail the test, not hang it


class Caller:
    """alpha-operator as the socket's opener: signed in (its own session) or through a token."""

    def __init__(self, world: World, kind: str) -> None:
        self.world = world
        self.session = TestClient(world.app)
        from webapi_helpers import sign_in

        self.session.headers["X-CSRF-Token"] = sign_in(self.session, "alpha-operator", PASSWORD)
        self.via_token = kind in ("token", "other-server")
        if self.via_token:
            made = self.session.post("/api/auth/tokens", json={"name": "socket", "expires_in_days": 1}).json()
            self.token_id = made["id"]
            self.client = TestClient(world.app, headers={"Authorization": f"Bearer {made['token']}"})
        else:
            self.client = self.session


def _revoke(kind: str, caller: Caller, world: World, make_app: AppFactory) -> None:
    admin = world.admin
    if kind == "token":
        assert caller.session.delete(f"/api/auth/tokens/{caller.token_id}").status_code == 200
    elif kind == "sign-out":
        assert caller.session.post("/api/auth/logout").status_code == 200
    elif kind == "password":
        other = TestClient(world.app)
        from webapi_helpers import sign_in

        other.headers["X-CSRF-Token"] = sign_in(other, "alpha-operator", PASSWORD)
        changed = other.post("/api/auth/password", json={"old_password": PASSWORD, "new_password": "a-new-password"})
        assert changed.status_code == 200 and changed.json()["other_sessions_ended"] >= 1
    elif kind == "leave":
        assert admin.delete("/api/projects/alpha/members/alpha-operator").status_code == 200
    elif kind == "role":
        assert admin.put("/api/projects/alpha/members/alpha-operator", json={"role": "viewer"}).status_code == 200
    elif kind == "disabled":
        # Root's `vmdeck user disable` on the host: the database changes behind this server's back.
        world.app.state.ctx.tenancy.set_disabled("alpha-operator", True)
    elif kind == "other-server":
        with TestClient(make_app(events=False)) as second:
            from webapi_helpers import sign_in

            second.headers["X-CSRF-Token"] = sign_in(second, "alpha-operator", PASSWORD)
            assert second.delete(f"/api/auth/tokens/{caller.token_id}").status_code == 200


@pytest.mark.parametrize("kind", KINDS)
def test_the_event_stream_and_the_vnc_console_close_when_access_is_lost(
        world: World, make_app: AppFactory, test_host: Host, fake_vnc: int, kind: str) -> None:
    xml = f"""<domain type='test'><name>screen</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
      <os><type arch='x86_64'>hvm</type></os>
      <devices><graphics type='vnc' port='{fake_vnc}' autoport='no' listen='127.0.0.1'/></devices></domain>"""
    test_host.conn.raw.defineXML(xml).create()
    assert world.admin.post("/api/vms/screen/adopt", json={"project": "alpha"}).status_code == 200
    caller = Caller(world, kind)
    ticket = caller.client.post("/api/vms/screen/console/ticket", json={"kind": "vnc"})
    assert ticket.status_code == 200, ticket.text
    with caller.client.websocket_connect("/api/events") as events, \
            caller.client.websocket_connect(f"/api/vms/screen/console/vnc?ticket={ticket.json()['ticket']}") as vnc:
        assert events.receive_json()["type"] == "hello"
        assert vnc.receive_bytes() == GREETING
        _revoke(kind, caller, world, make_app)
        assert _closed_code(events.receive_json) == 1008
        assert _closed_code(vnc.receive_bytes) == 1008


def test_sockets_of_callers_who_keep_access_stay_open(world: World) -> None:
    # A change to someone else (another user's sign-out, a role given elsewhere) closes nothing.
    caller = Caller(world, "sign-out")
    with caller.client.websocket_connect("/api/events") as ws:
        assert ws.receive_json()["type"] == "hello"
        world.client("alpha-viewer").post("/api/auth/logout")
        assert world.admin.put("/api/projects/beta/members/alpha-operator", json={"role": "viewer"}).status_code == 200
        guard = world.app.state.socket_guard
        # Each change woke the re-check at once; a periodic one follows. Still held after both ...
        time.sleep(RECHECK_S + 1)
        assert guard.open_count == 1
        # ... and still open: it is the caller's own sign-out that closes it now.
        assert caller.session.post("/api/auth/logout").status_code == 200
        assert _closed_code(ws.receive_json) == 1008
    assert guard.open_count == 0

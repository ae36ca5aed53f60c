"""The serial console of a real VM (libvirt's virDomainOpenConsole, which the test driver lacks) closes
when its caller loses access: a sign-out, a revoked token (tests/api/test_socket_revocation.py covers
the event stream and VNC for every kind of revocation)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from vmdeck.api import Settings, create_app
from vmdeck.api.revocation import RECHECK_S
from vmdeck.host.events import ensure_event_loop

PASSWORD = "serial-revocation-password"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    ensure_event_loop()
    settings = Settings(uri="qemu:///system", db_path=tmp_path / "web.sqlite", admin_password=PASSWORD,
                        inventory_interval=3600, allowed_hosts=("localhost", "127.0.0.1", "::1", "testserver"))
    with TestClient(create_app(settings)) as client:
        reply = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        yield client


def _closed_code(ws) -> int:  # type: ignore[no-untyped-def]
    def until_closed() -> int:
        while True:
            try:
                ws.receive_bytes()
            except WebSocketDisconnect as closed:
                return closed.code

    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(until_closed).result(timeout=RECHECK_S * 12)
    finally:
        pool.shutdown(wait=False)


def _serial(client: TestClient, vm: str):  # type: ignore[no-untyped-def]
    ticket = client.post(f"/api/vms/{vm}/console/ticket", json={"kind": "serial"})
    assert ticket.status_code == 200, ticket.text
    return client.websocket_connect(f"/api/vms/{vm}/console/serial?ticket={ticket.json()['ticket']}")


def test_the_serial_console_closes_on_sign_out_and_on_token_revocation(api: TestClient, shared_vm: str) -> None:
    session = TestClient(api.app)
    reply = session.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    session.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
    with _serial(session, shared_vm) as ws:
        ws.send_bytes(b"\r")  # the console is live: the guest's getty answers (not needed for the close)
        assert session.post("/api/auth/logout").status_code == 200
        assert _closed_code(ws) == 1008
    made = api.post("/api/auth/tokens", json={"name": "serial", "expires_in_days": 1}).json()
    script = TestClient(api.app, headers={"Authorization": f"Bearer {made['token']}"})
    with _serial(script, shared_vm) as ws:
        assert api.delete(f"/api/auth/tokens/{made['id']}").status_code == 200
        assert _closed_code(ws) == 1008

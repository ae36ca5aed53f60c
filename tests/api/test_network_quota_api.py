"""The networks and forwards quotas through the REST API, on libvirt's test driver: an administrator sets
them, a project's manager meets the networks limit before anything is made, and the project shows both."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tenancy_helpers import make_world

from conftest import AppFactory


def test_the_networks_quota_is_checked_before_anything_exists(make_app: AppFactory, client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    manager = world.client("alpha-manager")
    assert client.patch("/api/projects/alpha", json={"networks": 1, "forwards": 0}).status_code == 200
    assert manager.patch("/api/projects/alpha", json={"networks": 9}).status_code == 403  # administrators only
    assert manager.post("/api/networks", json={"name": "alpha-net", "subnet": "10.232.7.0/24"}).status_code == 201
    over = manager.post("/api/networks", json={"name": "alpha-net2", "subnet": "10.232.8.0/24"})
    assert over.status_code == 409 and over.json()["kind"] == "quota_exceeded", over.text
    assert "networks limit 1, in use 1" in over.json()["detail"]
    assert [n["name"] for n in manager.get("/api/networks").json()] == ["alpha-net"]
    shown = manager.get("/api/projects/alpha").json()["quota"]
    assert shown["networks"] == {"limit": 1, "used": 1} and shown["forwards"] == {"limit": 0, "used": 0}
    # Another project is not held to alpha's limit.
    beta = world.client("beta-manager")
    assert beta.post("/api/networks", json={"name": "beta-net", "subnet": "10.232.9.0/24"}).status_code == 201

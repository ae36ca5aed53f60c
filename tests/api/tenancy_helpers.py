"""A two-project world for the tenancy tests: projects alpha and beta, one user per role in alpha,
a manager in beta, VM a1 in alpha, b1 in beta, and the test driver's own `busy` in no project."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.testclient import TestClient
from webapi_helpers import sign_in

PASSWORD = "tenant-password-1"
ROLES = ("viewer", "operator", "manager")


@dataclass
class World:
    app: FastAPI
    admin: TestClient
    users: dict[str, TestClient] = field(default_factory=dict)

    def client(self, username: str) -> TestClient:
        if username not in self.users:
            client = TestClient(self.app)
            client.headers["X-CSRF-Token"] = sign_in(client, username, PASSWORD)
            self.users[username] = client
        return self.users[username]


def add_user(admin: TestClient, username: str, project: str, role: str) -> None:
    reply = admin.post("/api/auth/users", json={"username": username, "password": PASSWORD, "project": project,
                                                "role": role})
    assert reply.status_code == 201, reply.text


def make_world(app: FastAPI, admin: TestClient, *, quota: dict[str, float] | None = None) -> World:
    for project in ("alpha", "beta"):
        reply = admin.post("/api/projects", json={"name": project, "quota": quota or {}})
        assert reply.status_code == 201, reply.text
    for role in ROLES:
        add_user(admin, f"alpha-{role}", "alpha", role)
    add_user(admin, "beta-manager", "beta", "manager")
    for vm, project in (("a1", "alpha"), ("b1", "beta")):
        reply = admin.post("/api/vms", json={"name": vm, "template": "q35-virtio", "disk_gib": 1, "project": project})
        assert reply.status_code == 201, reply.text
    return World(app, admin)

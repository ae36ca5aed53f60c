"""Helpers shared by the API tests (a module of its own: every test folder has a `conftest`)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

ADMIN_PASSWORD = "correct-horse-battery"
AppFactory = Callable[..., FastAPI]


def sign_in(client: TestClient, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    reply = client.post("/api/auth/login", json={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    return reply.json()["csrf_token"]

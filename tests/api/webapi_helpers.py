"""Helpers shared by the API tests (a module of its own: every test folder has a `conftest`)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from vmdeck.api import Settings

ADMIN_PASSWORD = "correct-horse-battery"
AppFactory = Callable[..., FastAPI]


def sign_in(client: TestClient, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    reply = client.post("/api/auth/login", json={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    return reply.json()["csrf_token"]


def parallel_requests(client: TestClient, calls: list[tuple[str, str, dict[str, Any]]]) -> list[Response]:
    """(method, path, JSON body) each from its own thread and client (own cookies, own portal), all signed in
    as the same administrator: requests that really race inside the app."""
    clients = []
    for _ in calls:
        other = TestClient(client.app)
        other.headers["X-CSRF-Token"] = sign_in(other)
        clients.append(other)
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda pair: pair[0].request(pair[1][0], pair[1][1], json=pair[1][2]),
                             zip(clients, calls, strict=True)))


def settings_for(db: Path | str, tmp_path: Path, **values: object) -> Settings:
    """Settings on database `db` (a SQLite file, or a PostgreSQL URL with the socket's folder in tmp_path)."""
    if isinstance(db, Path):
        return Settings(db_path=db, **values)  # type: ignore[arg-type]
    return Settings(db_path=tmp_path / "web" / "vmdeck.sqlite", db_url=db, **values)  # type: ignore[arg-type]


@contextlib.contextmanager
def greeting_server(greeting: bytes) -> Iterator[int]:
    """A loopback TCP server (its port) that sends `greeting` to each client, then echoes in capitals: a
    stand-in for a VM's VNC server or sshd behind the proxies."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(greeting)
                while data := conn.recv(4096):
                    conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()

"""Helpers shared by the browser tests (a module of its own: every test folder has a `conftest`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

PASSWORD = "e2e-admin-password"
PREFIX = "vmdeck-test-e2e-"


class Server:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def api(self) -> httpx.Client:
        """A signed-in API client (session cookie + CSRF token), as the browser is."""
        client = httpx.Client(base_url=self.url, timeout=120)
        reply = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        reply.raise_for_status()
        # The cookie is Secure (browsers keep it on loopback http); httpx would not send it back over
        # http, so the client carries it explicitly, as the browser does.
        client.headers["Cookie"] = f"vmdeck_session={reply.cookies['vmdeck_session']}"
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        return client

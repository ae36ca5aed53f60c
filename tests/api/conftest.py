"""Fixtures for in-process API tests: the ASGI app on libvirt's test driver (its own node XML per test),
driven through Starlette's TestClient (httpx), no sockets and no real VMs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from webapi_helpers import ADMIN_PASSWORD, AppFactory, settings_for, sign_in

from pg_support import pg_server, pg_url  # noqa: F401 (fixtures)
from testdriver import open_test_host
from vmdeck.api import create_app
from vmdeck.api.events import ensure_event_loop
from vmdeck.host.connection import Host


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("VMDECK_DATA_DIR", str(data))
    return data


@pytest.fixture
def test_host(tmp_path: Path) -> Iterator[Host]:
    # The event loop must exist before the connection is opened for its events to be delivered.
    ensure_event_loop()
    with open_test_host(tmp_path) as host:
        yield host


@pytest.fixture
def backend() -> str:
    """The store's backend: SQLite, unless the module imports pg_support.both_backends (both, each test twice)."""
    return "sqlite"


@pytest.fixture
def db_setting(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Path | str:
    """The test's database: its own SQLite file, or its own database on the session's PostgreSQL."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return tmp_path / "web" / "vmdeck.sqlite"


@pytest.fixture
def make_app(tmp_path: Path, test_host: Host, db_setting: Path | str) -> AppFactory:
    def make(**overrides: object) -> FastAPI:
        # TestClient calls itself "testserver": an allowed name of the test app.
        overrides.setdefault("allowed_hosts", ("localhost", "127.0.0.1", "::1", "testserver"))
        settings = settings_for(db_setting, tmp_path, admin_password=ADMIN_PASSWORD, stats_interval=0.2,
                                **overrides)
        return create_app(settings, host=test_host)

    return make


@pytest.fixture
def anon(make_app: AppFactory) -> Iterator[TestClient]:
    with TestClient(make_app()) as client:
        yield client


@pytest.fixture
def client(anon: TestClient) -> TestClient:
    """Signed in as admin; sends the session's CSRF token with every request."""
    anon.headers["X-CSRF-Token"] = sign_in(anon)
    return anon

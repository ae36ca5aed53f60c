"""Fixtures for in-process API tests: the ASGI app on libvirt's test driver (its own node XML per test),
driven through Starlette's TestClient (httpx), no sockets and no real VMs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from webapi_helpers import ADMIN_PASSWORD, AppFactory, sign_in

from vmdeck.api import Settings, create_app
from vmdeck.api.events import ensure_event_loop
from vmdeck.host.connection import Host, connect

NODE_XML = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>
  <memory>8388608</memory>
  <pool type='dir'>
    <name>vmdeck</name>
    <target><path>{pool}</path></target>
    <capacity unit='GiB'>100</capacity><allocation unit='GiB'>10</allocation><available unit='GiB'>90</available>
  </pool>
  <domain type='test'>
    <name>busy</name>
    <memory unit='MiB'>256</memory>
    <vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
  </domain>
</node>
"""


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
    pool = tmp_path / "pool"
    pool.mkdir()
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(pool=pool))
    with connect(f"test://{node}") as host:
        yield host


@pytest.fixture
def make_app(tmp_path: Path, test_host: Host) -> AppFactory:
    def make(**overrides: object) -> FastAPI:
        settings = Settings(db_path=tmp_path / "web" / "vmdeck.sqlite", admin_password=ADMIN_PASSWORD,
                            stats_interval=0.2, **overrides)  # type: ignore[arg-type]
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

"""Several hosts: project quotas count every host, an unreachable host counts with its last count, and
concurrent placements never share the same free memory. Hosts are libvirt's test driver, each
`test://<node.xml>` a fake host of its own (tests/testdriver.py), registered in the server's database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from webapi_helpers import ADMIN_PASSWORD, parallel_requests, sign_in

from testdriver import fake_host_uri
from vmdeck.api import Settings, create_app
from vmdeck.api.events import ensure_event_loop
from vmdeck.cluster.pending import PlacementBook
from vmdeck.cluster.registry import HostEntry, Registry

Serve = Callable[[], TestClient]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "web" / "vmdeck.sqlite"


@pytest.fixture
def serve(db: Path) -> Iterator[Serve]:
    """Start `vmdeck serve` on the test's database (again: a restart), signed in as the administrator."""
    ensure_event_loop()
    clients: list[TestClient] = []

    def start() -> TestClient:
        app = create_app(Settings(db_path=db, admin_password=ADMIN_PASSWORD, stats_interval=0.2,
                                  allowed_hosts=("localhost", "127.0.0.1", "::1", "testserver")))
        client = TestClient(app)
        client.__enter__()
        client.headers["X-CSRF-Token"] = sign_in(client)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def _hosts(db: Path, tmp_path: Path, names: str, reserve_mib: int = 512) -> Registry:
    registry = Registry(db)
    registry.remove("local")
    for name in names:
        registry.add(HostEntry(name, fake_host_uri(tmp_path, name), vcpu_ratio=2, reserve_mib=reserve_mib))
    return registry


def _project(client: TestClient, name: str, **quota: float) -> None:
    reply = client.post("/api/projects", json={"name": name, "quota": quota})
    assert reply.status_code == 201, reply.text


def _create(client: TestClient, name: str, project: str, host: str = "auto", **extra: object) -> Response:
    return client.post("/api/vms", json={"name": name, "template": "q35-virtio", "memory_mib": 128, "disk_gib": 1,
                                         "project": project, "host": host, **extra})


def test_instances_quota_counts_the_vms_of_every_host(serve: Serve, db: Path, tmp_path: Path) -> None:
    _hosts(db, tmp_path, "ab")
    client = serve()
    _project(client, "acme", instances=2)
    assert _create(client, "one", "acme", host="a").status_code == 201
    assert _create(client, "two", "acme", host="b").status_code == 201
    for host in ("a", "b", "auto"):
        refused = _create(client, "three", "acme", host=host)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "quota_exceeded"
        assert refused.json()["detail"] == "quota exceeded in project acme: instances limit 2, in use 2, this needs 1 more"
    shown = client.get("/api/projects/acme").json()
    assert shown["quota"]["instances"] == {"limit": 2, "used": 2}
    assert shown["quota"]["memory_mib"]["used"] == 256 and shown["quota"]["disk_gib"]["used"] == 2.0
    assert shown["vms"] == ["one", "two"] and shown["complete"] is True
    assert {h: (row["vms"], row["counted"]) for h, row in shown["hosts"].items()} == {
        "a": (["one"], "live"), "b": (["two"], "live")}
    # Deleting the project sees the VMs of both hosts.
    assert client.delete("/api/projects/acme").status_code == 409


def test_an_unreachable_host_counts_with_its_last_count(serve: Serve, db: Path, tmp_path: Path) -> None:
    registry = _hosts(db, tmp_path, "abc")
    first = serve()
    _project(first, "acme", instances=2)
    _project(first, "other", instances=5)
    _project(first, "free")  # no limits
    assert _create(first, "on-c", "acme", host="c").status_code == 201
    first.__exit__(None, None, None)
    # Host c goes away (its libvirt can no longer be opened), and the server restarts: nothing of c's
    # use is left in memory, only in the database.
    (tmp_path / "c" / "node.xml").unlink()
    client = serve()
    shown = client.get("/api/projects/acme").json()
    assert shown["quota"]["instances"]["used"] == 1 and shown["vms"] == ["on-c"]
    kept = shown["hosts"]["c"]
    assert kept["counted"] == "kept" and kept["vms"] == ["on-c"] and kept["counted_at"].endswith("Z")
    assert "cannot connect to libvirt" in kept["reason"]
    # One more fits (1 kept on c + 1), the next does not: c's VM still counts while c is down.
    assert _create(client, "on-a", "acme").status_code == 201
    refused = _create(client, "again", "acme")
    assert refused.status_code == 409 and "instances limit 2, in use 2" in refused.json()["detail"]
    # A project that had no VM on c when c was last counted has nothing there.
    assert _create(client, "other-1", "other").status_code == 201
    # A host never counted: a project with limits cannot be checked (503 naming the host), one without can.
    registry.add(HostEntry("d", "qemu+tcp://127.0.0.1:1/system"))
    unknown = _create(client, "blocked", "other")
    assert unknown.status_code == 503 and unknown.json()["error"] == "host_unavailable", unknown.text
    assert "host d does not answer" in unknown.json()["detail"] and "never counted" in unknown.json()["detail"]
    assert _create(client, "free-1", "free").status_code == 201
    shown = client.get("/api/projects/other").json()
    assert shown["complete"] is False and shown["hosts"]["d"]["counted"] == "unknown"
    assert shown["quota"]["instances"]["used"] == 1


def test_concurrent_auto_placements_take_each_hosts_room_once(serve: Serve, db: Path, tmp_path: Path) -> None:
    # 8192 MiB hosts with 256 MiB running and 7236 reserved: 700 MiB free each, room for one 512 MiB VM.
    _hosts(db, tmp_path, "ab", reserve_mib=7236)
    client = serve()
    bodies: list[dict[str, object]] = [{"name": f"race{i}", "template": "q35-virtio", "memory_mib": 512, "start": True}
                                       for i in range(6)]
    replies = parallel_requests(client, [("POST", "/api/vms", body) for body in bodies])
    made = [r.json() for r in replies if r.status_code == 201]
    refused = [r.json() for r in replies if r.status_code != 201]
    assert len(made) == 2, [r.text for r in replies]
    hosts = {vm["name"]: vm["host"] for vm in client.get("/api/vms").json()}
    assert sorted(hosts[vm["name"]] for vm in made) == ["a", "b"]
    assert len(refused) == 4 and {r["error"] for r in refused} == {"no_host"}, refused
    for reply in refused:
        # Every host is named with why: the VM that runs there now, or the create still holding its room.
        assert "a: needs 512 MiB, 188 MiB free" in reply["detail"] and "b: needs 512 MiB, 188 MiB free" in reply["detail"]
    assert PlacementBook(db).claims() == []  # every claim released

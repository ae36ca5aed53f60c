"""The API across several hosts: two test-driver hosts (each `test://<node.xml>` its own fake host)
registered in the server's database, `local` removed: registry routes, one inventory with a host
column, placement on create, the VM-name resolver on every /api/vms/{name} route, merged events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from webapi_helpers import ADMIN_PASSWORD, settings_for, sign_in

from pg_support import both_backends  # noqa: F401 (every test on SQLite and on PostgreSQL)
from testdriver import fake_host_uri
from vmdeck.api import create_app
from vmdeck.api.events import ensure_event_loop
from vmdeck.cluster.registry import HostEntry, Registry


@pytest.fixture
def fleet_client(tmp_path: Path, db_setting: Path | str) -> Iterator[TestClient]:
    ensure_event_loop()
    registry = Registry(db_setting)
    registry.remove("local")
    # 8 GiB hosts with 256 MiB running: a leaves 8192-7000-256 = 936 MiB free, b 1936 MiB.
    registry.add(HostEntry("a", fake_host_uri(tmp_path, "a"), vcpu_ratio=2, reserve_mib=7000))
    registry.add(HostEntry("b", fake_host_uri(tmp_path, "b"), vcpu_ratio=2, reserve_mib=6000))
    app = create_app(settings_for(db_setting, tmp_path, admin_password=ADMIN_PASSWORD, stats_interval=0.2,
                                  allowed_hosts=("localhost", "127.0.0.1", "::1", "testserver")))
    with TestClient(app) as client:
        client.headers["X-CSRF-Token"] = sign_in(client)
        yield client


def test_hosts_list_and_inventory(fleet_client: TestClient) -> None:
    hosts = fleet_client.get("/api/hosts").json()
    assert [(h["name"], h["reachable"], h["pcpus"], h["vcpu_limit"], h["memory_free_mib"]) for h in hosts] == [
        ("a", True, 4, 8, 936), ("b", True, 4, 8, 1936)]
    vms = fleet_client.get("/api/vms").json()
    assert [(vm["name"], vm["host"]) for vm in vms] == [("busy-a", "a"), ("busy-b", "b")]
    # Any VM route finds the VM's host; ?host= names it outright.
    assert fleet_client.get("/api/vms/busy-b").json()["name"] == "busy-b"
    assert fleet_client.get("/api/vms/busy-b/devices").status_code == 200
    assert fleet_client.get("/api/vms/busy-b", params={"host": "a"}).status_code == 404
    missing = fleet_client.get("/api/vms/nope")
    assert missing.status_code == 404 and "on any host (a, b)" in missing.json()["detail"]


def test_create_is_placed_and_refused_with_reasons(fleet_client: TestClient) -> None:
    made = fleet_client.post("/api/vms", json={"name": "new1", "template": "q35-virtio", "memory_mib": 512,
                                               "start": True})
    assert made.status_code == 201, made.text
    assert {vm["name"]: vm["host"] for vm in fleet_client.get("/api/vms").json()}["new1"] == "b"
    explicit = fleet_client.post("/api/vms", json={"name": "new2", "template": "q35-virtio", "memory_mib": 64,
                                                   "host": "a"})
    assert explicit.status_code == 201, explicit.text
    too_big = fleet_client.post("/api/vms", json={"name": "huge", "template": "q35-virtio", "memory_mib": 2048})
    assert too_big.status_code == 409 and too_big.json()["error"] == "no_host"
    detail = too_big.json()["detail"]
    assert "a: needs 2048 MiB, 936 MiB free" in detail and "b: needs 2048 MiB, 1424 MiB free" in detail
    taken = fleet_client.post("/api/vms", json={"name": "busy-a", "template": "q35-virtio", "memory_mib": 64})
    assert taken.status_code == 409 and "already exists on host a" in taken.json()["detail"]


def test_drain_state_and_registry_changes(fleet_client: TestClient) -> None:
    added = fleet_client.post("/api/hosts", json={"name": "c", "uri": "qemu+tcp://127.0.0.1:1/system",
                                                  "check": False})
    assert added.status_code == 201
    down = {h["name"]: h for h in fleet_client.get("/api/hosts").json()}["c"]
    assert not down["reachable"] and "Connection refused" in down["reason"]
    assert fleet_client.get("/api/vms").headers["X-Vmdeck-Unreachable"].startswith('{"c": ')
    refused = fleet_client.post("/api/hosts", json={"name": "d", "uri": "qemu+tcp://127.0.0.1:1/system"})
    # The caller's URI to fix (422 on `uri`, libvirt's reason in the text), not this server unavailable.
    assert refused.status_code == 422 and refused.json()["field"] == "uri", refused.text
    assert "does not answer" in refused.json()["detail"] and "d" not in [h["name"] for h in fleet_client.get("/api/hosts").json()]
    # A NUL in the URI is refused as input before libvirt sees it (libvirt-python raises ValueError on it):
    # at the edge, as every NUL in a JSON body (vmdeck.api.limits).
    nul = fleet_client.post("/api/hosts", json={"name": "e", "uri": "qemu+tcp://127.0.0.1/sys\u0000tem"})
    assert nul.status_code == 422 and nul.json()["field"] == "uri", nul.text
    assert nul.json()["detail"] == "uri: NUL characters are not allowed", nul.text
    assert fleet_client.delete("/api/hosts/c").json()["removed"]
    assert fleet_client.post("/api/hosts/a/undrain").json()["draining"] is False
    assert fleet_client.delete("/api/hosts/nope").status_code == 404


def test_events_from_every_host_carry_the_host(fleet_client: TestClient) -> None:
    with fleet_client.websocket_connect("/api/events") as ws:
        assert ws.receive_json()["type"] == "hello"
        fleet_client.post("/api/vms/busy-b/poweroff")
        fleet_client.post("/api/vms/busy-a/poweroff")
        seen = set()
        for _ in range(50):
            message = ws.receive_json()
            if message["type"] == "state":
                seen.add((message["vm"], message["host"], message["state"]))
            if len(seen) == 2:
                break
        assert seen == {("busy-b", "b", "shut off"), ("busy-a", "a", "shut off")}


def test_room_held_by_a_create_in_progress_shows_as_used(fleet_client: TestClient, db_setting: Path | str) -> None:
    from vmdeck.cluster.fleet import Fleet
    from vmdeck.cluster.place import room_for

    def host_b() -> dict:
        return next(h for h in fleet_client.get("/api/hosts").json() if h["name"] == "b")

    before = host_b()
    assert (before["pending_mib"], before["pending_vcpus"]) == (0, 0)
    # A create elsewhere (the CLI, another request) has placed a VM on b and not started it yet.
    with Fleet(registry=Registry(db_setting)) as fleet, \
            room_for(fleet, "coming", 2, 700, host_name="b", new=True):
        held = host_b()
        assert (held["pending_mib"], held["pending_vcpus"]) == (700, 2)
        assert held["memory_allocated_mib"] == before["memory_allocated_mib"] + 700
        assert held["memory_free_mib"] == before["memory_free_mib"] - 700
        assert held["vcpus_allocated"] == before["vcpus_allocated"] + 2
    after = host_b()
    assert {**after, "answered_in_s": None} == {**before, "answered_in_s": None}  # released with the create

"""Project quotas: usage against limits, enforced atomically under concurrency, refusals that say why."""

from __future__ import annotations

from fastapi.testclient import TestClient
from webapi_helpers import parallel_requests

from pg_support import both_backends  # noqa: F401 (every test on SQLite and on PostgreSQL)
from vmdeck.host.connection import Host


def _project(client: TestClient, name: str, **quota: float) -> None:
    reply = client.post("/api/projects", json={"name": name, "quota": quota})
    assert reply.status_code == 201, reply.text


def test_eight_concurrent_creates_against_three_instances(client: TestClient, test_host: Host) -> None:
    _project(client, "gamma", instances=3)
    replies = parallel_requests(client, [("POST", "/api/vms", {"name": f"q{i}", "template": "q35-virtio", "disk_gib": 1,
                                                       "project": "gamma"}) for i in range(8)])
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201] * 3 + [409] * 5, [r.text for r in replies]
    refusal = next(r.json() for r in replies if r.status_code == 409)
    assert refusal["error"] == "quota_exceeded"
    assert "instances limit 3, in use 3" in refusal["detail"]
    made = sorted(r.json()["name"] for r in replies if r.status_code == 201)
    # No volume left behind by the refused: the pool holds exactly the created VMs' disks.
    volumes = sorted(test_host.conn.pool("vmdeck").volume_names())
    assert volumes == sorted(f"{name}-vda.qcow2" for name in made)
    shown = client.get("/api/projects/gamma").json()
    assert shown["quota"]["instances"] == {"limit": 3, "used": 3}
    assert shown["vms"] == made
    assert shown["quota"]["disk_gib"]["used"] == 3.0 and shown["quota"]["vcpus"]["limit"] is None


def test_concurrent_resizes_cannot_pass_vcpu_or_memory_quotas(client: TestClient) -> None:
    _project(client, "delta", vcpus=6, memory_mib=768)
    for i in range(4):
        reply = client.post("/api/vms", json={"name": f"r{i}", "template": "q35-virtio", "vcpus": 1,
                                              "memory_mib": 128, "disk_gib": 1, "project": "delta"})
        assert reply.status_code == 201, reply.text
    grown = parallel_requests(client, [("PATCH", f"/api/vms/r{i}", {"vcpus": 2}) for i in range(4)])
    assert sorted(r.status_code for r in grown) == [200, 200, 409, 409], [r.text for r in grown]
    assert client.get("/api/projects/delta").json()["quota"]["vcpus"]["used"] == 6
    grown = parallel_requests(client, [("PATCH", f"/api/vms/r{i}", {"memory_mib": 256}) for i in range(4)])
    assert sorted(r.status_code for r in grown) == [200, 200, 409, 409], [r.text for r in grown]
    refusal = next(r.json() for r in grown if r.status_code == 409)
    assert refusal["error"] == "quota_exceeded" and "memory_mib limit 768 MiB, in use 768 MiB" in refusal["detail"]
    # Shrinking is always allowed.
    assert client.patch("/api/vms/r0", json={"vcpus": 1}).status_code == 200


def test_a_create_refused_by_quota_names_quota_limit_and_use(client: TestClient) -> None:
    _project(client, "small", vcpus=2)
    reply = client.post("/api/vms", json={"name": "big", "template": "q35-virtio", "vcpus": 3, "project": "small"})
    assert reply.status_code == 409
    assert reply.json()["detail"] == "quota exceeded in project small: vcpus limit 2, in use 0, this needs 3 more"
    assert client.get("/api/vms/big").status_code == 404


def test_added_and_grown_disks_count_against_the_disk_quota(client: TestClient) -> None:
    # (libvirt's test driver cannot attach disks: the quota check, which comes first, is what is tested)
    _project(client, "disks", disk_gib=1.5)
    assert client.post("/api/vms", json={"name": "d1", "template": "q35-virtio", "disk_gib": 1,
                                         "project": "disks"}).status_code == 201
    refused = client.post("/api/vms/d1/disks", json={"size_gib": 1})
    assert refused.status_code == 409 and "disk_gib limit 1.5 GiB, in use 1 GiB" in refused.json()["detail"]
    grown = client.post("/api/vms/d1/disks/vda/resize", json={"size_gib": 3})
    assert grown.status_code == 409 and "this needs 2 GiB more" in grown.json()["detail"], grown.text
    assert client.post("/api/vms/d1/disks/vda/resize", json={"size_gib": 1.5}).status_code != 409

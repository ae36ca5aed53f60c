"""Snapshot and clone endpoints on libvirt's test driver: the tree, and each error status.

The success paths change real image files: tests/integration and the browser test cover them.
"""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_tree_of_a_vm_without_snapshots(client: TestClient) -> None:
    assert client.get("/api/vms/busy/snapshots").json() == {"current": None, "snapshots": []}


def test_errors_have_their_status(client: TestClient) -> None:
    assert client.get("/api/vms/ghost/snapshots").status_code == 404
    bad = client.post("/api/vms/busy/snapshots", json={"name": "a/b"})
    assert bad.status_code == 422 and bad.json()["field"] == "name"
    unknown = client.post("/api/vms/busy/snapshots/nope/revert")
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    assert client.delete("/api/vms/busy/snapshots/nope").status_code == 404
    running = client.post("/api/vms/busy/clone", json={"name": "copy"})
    assert running.status_code == 409 and "--linked" in running.json()["detail"]
    taken = client.post("/api/vms/busy/clone", json={"name": "busy", "linked": True})
    assert taken.status_code == 409
    assert client.post("/api/vms/busy/clone", json={"name": "bad/name"}).status_code == 422

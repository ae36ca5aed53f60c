"""Backups through the API: a backup belongs to its VM's project; roles as the policy table says; another
project's backup answers exactly as one that does not exist; the backup-storage quota refuses up front.

The test driver cannot run backup jobs, so the repository is filled with manifests written here (the
real backups are tests/integration/test_backups.py)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient
from tenancy_helpers import make_world
from webapi_helpers import AppFactory

from vmdeck.storage.backup_repo import BackupFile, Manifest, Repository, sha256_of


def _fake_backup(vm: str, project: str, size: int) -> str:
    """A finished backup in the default repository, as `backup create` publishes it."""
    repo = Repository()
    backup_id = f"{vm}-20261206-120000-0001"
    partial = repo.begin(backup_id)
    disk = partial.file("disk-vda.qcow2")
    disk.write_bytes(os.urandom(size))
    files = (BackupFile("disk-vda.qcow2", "disk", size, sha256_of(disk), "vda", None, 2**30),)
    partial.publish(Manifest(id=backup_id, vm=vm, uuid="u", project=project, host="test:///default",
                             created="2026-12-06T12:00:00.000000Z", kind="full", parent=None, checkpoint=None,
                             state="running", quiesced=False, reason="test", domain_xml="<domain/>", files=files))
    return backup_id


def test_backups_belong_to_their_projects(make_app: AppFactory, client: TestClient, tmp_path: Path) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    mine = _fake_backup("a1", "alpha", 4096)
    _fake_backup("b1", "beta", 4096)
    viewer, operator, manager = (world.client(f"alpha-{r}") for r in ("viewer", "operator", "manager"))
    beta = world.client("beta-manager")

    shown = viewer.get(f"/api/backups/{mine}")
    assert shown.status_code == 200 and shown.json()["project"] == "alpha"
    assert viewer.post(f"/api/backups/{mine}/verify").json()["ok"] is True
    assert [b["id"] for b in viewer.get("/api/backups").json()] == [mine]
    assert [b["id"] for b in viewer.get("/api/vms/a1/backups").json()["backups"]] == [mine]
    # Another project's backup is 404, word for word as one that does not exist.
    foreign = beta.get(f"/api/backups/{mine}")
    missing = beta.get("/api/backups/nosuch-20261206-120000-0001")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["detail"].replace(mine, "X") == missing.json()["detail"].replace(
        "nosuch-20261206-120000-0001", "X")
    assert beta.post(f"/api/backups/{mine}/restore", json={"as_name": "stolen"}).status_code == 404
    # Restoring is for managers: an operator is refused; a manager passes the policy (the test driver then
    # fails the restore itself: its VM's disk is no real image).
    assert operator.post(f"/api/backups/{mine}/restore", json={"as_name": "a2"}).status_code == 403
    assert manager.post(f"/api/backups/{mine}/restore", json={"as_name": "a2"}).status_code not in (401, 403, 404)
    assert viewer.post("/api/vms/a1/backups/prune", json={"keep_last": 1}).status_code == 403
    assert viewer.post("/api/vms/a1/backups", json={}).status_code == 403


def test_backup_storage_quota_refuses_up_front(make_app: AppFactory, client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    assert world.client("alpha-manager").put("/api/projects/alpha/backup-quota",
                                             json={"max_backup_gib": 1}).status_code == 403  # administrators only
    _fake_backup("a1", "alpha", 2 * 2**20)  # already 2 MiB in the repository
    set_to = client.put("/api/projects/alpha/backup-quota", json={"max_backup_gib": 1 / 1024})  # 1 MiB
    assert set_to.status_code == 200 and set_to.json()["used_gib"] * 1024 == 2.0
    before = sorted(p.name for p in Repository().root.iterdir())
    refused = world.client("alpha-operator").post("/api/vms/a1/backups", json={})
    assert refused.status_code == 409 and refused.json()["kind"] == "quota_exceeded", refused.text
    assert "backup_gib" in refused.json()["detail"]
    assert sorted(p.name for p in Repository().root.iterdir()) == before  # nothing was started

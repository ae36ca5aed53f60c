"""A VM's storage through the REST API, on libvirt's test driver: disk sizes, kept volumes (an owned volume no
disk uses), reattach and delete; who may do which; what a tenant sees of host paths."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from tenancy_helpers import make_world

from vmdeck.domxml import devices as dx
from vmdeck.domxml.names import VMDECK_NS
from vmdeck.host.connection import Host
from vmdeck.storage.pool import create_volume


def _keep_a_volume(host: Host, vm: str, name: str) -> Path:
    """A volume in vmdeck's pool recorded as `vm`'s own and used by no disk: what `disk remove` without
    --delete-volume leaves (the test driver cannot detach, so the record is written as remove_disk leaves it)."""
    path = Path(create_volume(host, name, 0.5, "qcow2"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()  # the test driver keeps volumes in memory; vmdeck lists only volumes whose file exists
    dom = host.lookup(vm)
    dom.set_metadata(dx.with_owned_volume(dom.metadata(VMDECK_NS, live=False), add=str(path)), "vmdeck", VMDECK_NS,
                     live=False)
    return path


def test_storage_lists_disks_and_kept_volumes(client: TestClient, test_host: Host) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    viewer, manager, stranger = (world.client(u) for u in ("alpha-viewer", "alpha-manager", "beta-manager"))
    storage = viewer.get("/api/vms/a1/storage")
    assert storage.status_code == 200, storage.text
    disks = storage.json()["disks"]
    assert [d["target"] for d in disks][:1] == ["vda"]
    assert disks[0]["owned"] and disks[0]["virtual_bytes"] == 2**30 and disks[0]["persistent"]
    assert storage.json()["kept"] == []
    path = _keep_a_volume(test_host, "a1", "a1-vdb.qcow2")
    kept = viewer.get("/api/vms/a1/storage").json()["kept"]
    assert [k["name"] for k in kept] == ["a1-vdb.qcow2"]
    assert kept[0]["virtual_bytes"] == 2**29
    # A tenant sees the file's name, never where it is on the host; an administrator sees the path.
    assert kept[0]["path"] == "a1-vdb.qcow2"
    assert client.get("/api/vms/a1/storage").json()["kept"][0]["path"] == str(path)
    # Another project's VM is not there at all; a viewer may look but not act.
    assert stranger.get("/api/vms/a1/storage").status_code == 404
    assert viewer.delete("/api/vms/a1/volumes/a1-vdb.qcow2").status_code == 403
    assert viewer.post("/api/vms/a1/volumes/a1-vdb.qcow2/reattach", json={}).status_code == 403
    assert stranger.delete("/api/vms/a1/volumes/a1-vdb.qcow2").status_code == 404
    # Only the VM's own kept volumes: not its disk, not another VM's, not a made-up name.
    for volume in ("a1-vda.qcow2", "nosuch.qcow2", "b1-vda.qcow2"):
        missing = manager.delete(f"/api/vms/a1/volumes/{volume}")
        assert missing.status_code == 404 and "no kept volume" in missing.json()["detail"], missing.text
    # Reattach reaches the hot-plug (which the test driver cannot do: the one-line refusal, nothing changed).
    refused = manager.post("/api/vms/a1/volumes/a1-vdb.qcow2/reattach", json={"bus": "virtio"})
    assert refused.status_code == 422 and "not supported" in refused.json()["detail"], refused.text
    assert manager.post("/api/vms/a1/volumes/a1-vdb.qcow2/reattach", json={"bus": "x y"}).status_code == 422
    # Delete: the volume leaves the pool and the VM's record; the audit log has the line.
    gone = manager.delete("/api/vms/a1/volumes/a1-vdb.qcow2")
    assert gone.status_code == 200, gone.text
    assert gone.json()["deleted"] and gone.json()["name"] == "a1-vdb.qcow2"
    assert viewer.get("/api/vms/a1/storage").json()["kept"] == []
    assert str(path) not in test_host.lookup("a1").metadata(VMDECK_NS, live=False)
    assert "a1-vdb.qcow2" not in test_host.conn.pool("vmdeck").volume_names()
    audit = client.get("/api/audit", params={"vm": "a1"}).json()
    lines = audit["entries"] if isinstance(audit, dict) else audit
    assert any(line["action"] == "vm.devices" and line["user"] == "alpha-manager" and line["status"] == 200
               for line in lines), lines


def test_storage_of_a_missing_vm(client: TestClient) -> None:
    assert client.get("/api/vms/ghost/storage").status_code == 404
    assert client.delete("/api/vms/ghost/volumes/x.qcow2").status_code == 404

"""The VM JSON carries what the VM may do now (`can`, from vmdeck.vm.state), which the pages use instead of
reading the state's name (libvirt's test driver)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_the_vm_says_what_it_can_do_and_follows_its_state(client: TestClient) -> None:
    shown = client.get("/api/vms/busy").json()
    assert shown["state"] == "running"
    assert shown["can"]["migrate_live"] is True and shown["can"]["migrate_offline"] is False
    assert shown["can"]["console"] is True
    assert client.post("/api/vms/busy/pause").status_code == 200
    paused = client.get("/api/vms/busy").json()["can"]
    assert paused["migrate_live"] is True and paused["snapshot"] is True  # paused keeps its QEMU
    assert client.post("/api/vms/busy/poweroff").status_code == 200
    off = client.get("/api/vms/busy").json()["can"]
    assert off == {"active": False, "console": False, "migrate_live": False, "migrate_offline": True,
                   "snapshot": True, "snapshot_memory": False, "sample": False}

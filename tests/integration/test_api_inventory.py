"""The API's VM inventory on the real libvirtd: it follows changes made with virsh through libvirt's events,
and a write through the API shows in the very next list."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from vmdeck.api import Settings, create_app
from vmdeck.host.connection import connect
from vmdeck.host.events import ensure_event_loop
from vmdeck.vm.project import set_project

VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
PASSWORD = "inventory-test-password"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    ensure_event_loop()
    # A bulk refresh once an hour: whatever the list shows within the test came from events (or our writes).
    settings = Settings(uri="qemu:///system", db_path=tmp_path / "web.sqlite", admin_password=PASSWORD,
                        inventory_interval=3600, allowed_hosts=("localhost", "127.0.0.1", "::1", "testserver"))
    with TestClient(create_app(settings)) as client:
        reply = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        yield client


def virsh(*args: str) -> None:
    subprocess.run([*VIRSH, *args], check=True, capture_output=True, timeout=120)


def listed(api: TestClient) -> dict[str, dict[str, Any]]:
    reply = api.get("/api/vms")
    assert reply.status_code == 200, reply.text
    return {vm["name"]: vm for vm in reply.json()}


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    # Events arrive in milliseconds; the generous bound is for a loaded 2-core host.
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"the inventory never showed: {what}"
        time.sleep(0.1)


def test_inventory_follows_virsh_and_own_writes(api: TestClient, tmp_path: Path) -> None:
    name = f"vmdeck-test-{os.getpid()}-inventory-{uuid.uuid4().hex[:6]}"
    xml = tmp_path / "vm.xml"
    xml.write_text(f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                   "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>")
    inventory = api.app.state.ctx.inventory  # type: ignore[attr-defined]
    assert inventory.live
    listed(api)  # loaded once
    refreshes = inventory.refreshes
    try:
        virsh("define", str(xml))
        eventually(lambda: listed(api).get(name, {}).get("state") == "shut off", f"{name} defined by virsh")
        assert api.get(f"/api/vms/{name}").json()["state"] == "shut off"  # show is now cached

        # Another process moves the VM to a project (what `vmdeck vm adopt` does): the policy answers
        # "whose VM is this" from the inventory, so the metadata-change event must reach it.
        other = connect("qemu:///system")
        try:
            set_project(other, name, "alpha")
        finally:
            other.close()
        eventually(lambda: inventory.known_project(name) == (True, "alpha"), f"{name} moved to project alpha")
        assert listed(api)[name]["project"] == "alpha"

        virsh("start", name)
        eventually(lambda: listed(api)[name]["state"] == "running", f"{name} started by virsh")
        eventually(lambda: api.get(f"/api/vms/{name}").json()["state"] == "running", "show after virsh start")

        virsh("setmaxmem", name, "96M", "--config")  # a definition change: DEFINED (updated) event
        virsh("destroy", name)
        eventually(lambda: listed(api)[name] == {**listed(api)[name], "state": "shut off", "memory_mib": 96},
                   f"{name} destroyed and resized by virsh")

        # Our own write: the very next list and show say so, without waiting for the event.
        assert api.post(f"/api/vms/{name}/start").status_code == 200
        assert listed(api)[name]["state"] == "running"
        assert api.get(f"/api/vms/{name}").json()["state"] == "running"
        assert api.post(f"/api/vms/{name}/poweroff").status_code == 200
        assert listed(api)[name]["state"] == "shut off"

        virsh("undefine", name)
        eventually(lambda: name not in listed(api), f"{name} undefined by virsh")
        assert api.get(f"/api/vms/{name}").status_code == 404
        # No bulk refresh happened: the events did it all.
        assert inventory.refreshes == refreshes
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            virsh("destroy", name)
        with contextlib.suppress(subprocess.CalledProcessError):
            virsh("undefine", name)

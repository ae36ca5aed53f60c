"""Tenants use QEMU's user network and the libvirt networks an administrator allowed their project, nothing else.

The world of tenancy_helpers on libvirt's test driver, whose host gets one libvirt network, `mgmt-internal`.
A tenant asking for it (or for one that does not exist) gets the same 404, naming no other network;
once `vmdeck project networks alpha --allow mgmt-internal` ran, alpha may use it and beta still may not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from tenancy_helpers import make_world

from vmdeck.host.connection import Host


def _vmdeck(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VMDECK_DB": str(db)}
    return subprocess.run([sys.executable, "-m", "vmdeck.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_a_tenant_may_use_only_the_networks_allowed_to_its_project(client: TestClient, test_host: Host,
                                                                   tmp_path: Path) -> None:
    test_host.conn.raw.networkCreateXML("<network><name>mgmt-internal</name><bridge name='virbr-mgmt'/></network>")
    world = make_world(client.app, client)  # type: ignore[arg-type]
    alpha, beta = world.client("alpha-manager"), world.client("beta-manager")

    def create(who: TestClient, name: str, network: str) -> tuple[int, dict[str, object]]:
        reply = who.post("/api/vms", json={"name": name, "template": "q35-virtio", "network": network})
        return reply.status_code, reply.json()

    status, refused = create(alpha, "a-host-net", "mgmt-internal")  # the host's network, never allowed to alpha
    assert status == 404, refused
    assert refused["detail"] == ("no network named 'mgmt-internal' for project alpha "
                                 "(use 'user', or ask an administrator to allow one)")
    status, unknown = create(alpha, "a-no-net", "no-such-net")
    assert status == 404 and unknown["detail"] == refused["detail"].replace("'mgmt-internal'", "'no-such-net'")
    assert "mgmt-internal" not in str(unknown)  # the answer names no network that exists
    assert create(alpha, "a-user-net", "user")[0] == 201
    nic = alpha.post("/api/vms/a1/nics", json={"network": "mgmt-internal"})
    assert nic.status_code == 404 and nic.json()["detail"] == refused["detail"]

    db = tmp_path / "web" / "vmdeck.sqlite"
    allowed = _vmdeck(db, "project", "networks", "alpha", "--allow", "mgmt-internal")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "alpha: user, mgmt-internal"
    assert create(alpha, "a-host-net", "mgmt-internal")[0] == 201
    assert create(beta, "b-host-net", "mgmt-internal")[0] == 404  # beta was not allowed it
    assert create(world.admin, "admin-net", "mgmt-internal")[0] == 201  # administrators use any network
    past = alpha.post("/api/vms/a1/nics", json={"network": "mgmt-internal"})
    assert past.status_code != 404, past.text  # past the check

    listed = json.loads(_vmdeck(db, "project", "networks", "alpha", "--json").stdout)
    assert listed == {"project": "alpha", "networks": ["user", "mgmt-internal"]}
    assert _vmdeck(db, "project", "networks", "alpha", "--disallow", "mgmt-internal").returncode == 0
    assert create(alpha, "a-host-net2", "mgmt-internal")[0] == 404
    bad = _vmdeck(db, "project", "networks", "alpha", "--allow", "user")
    assert bad.returncode == 2 and "every project's" in bad.stderr
    assert _vmdeck(db, "project", "networks", "nope", "--allow", "mgmt-internal").returncode == 3
    audit = _vmdeck(db, "audit", "--json")
    assert "project networks alpha +mgmt-internal" in audit.stdout, audit.stderr

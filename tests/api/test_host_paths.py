"""Tenants' answers name files, never where they are on the host; an administrator's keep the paths.

The world of tenancy_helpers (projects alpha and beta, VM a1 in alpha) on libvirt's test driver, with an
image in the library and an ISO in a1's drive: VM details, the image list and errors all carry host paths
for an administrator, and none for alpha's manager.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tenancy_helpers import make_world

from vmdeck.api.hostpaths import hide_host_paths
from vmdeck.images.library import import_image

ISO = bytes(32769) + b"CD001" + bytes(4096)


@pytest.fixture
def image(tmp_path: Path, _data_dir: Path) -> str:
    path = tmp_path / "cloud.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "2G"], check=True)
    return import_image(path, name="cloud", os_name="debian").name


def _paths_in(reply_text: str, roots: tuple[str, ...]) -> list[str]:
    return [root for root in roots if root in reply_text]


def test_a_tenant_sees_no_host_path_and_an_administrator_does(client: TestClient, image: str, tmp_path: Path,
                                                              _data_dir: Path) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    assert client.put("/api/isos/tools.iso", content=ISO).status_code == 201
    added = client.post("/api/vms", json={"name": "a2", "template": "q35-virtio", "cdrom": "tools.iso",
                                          "project": "alpha"})
    assert added.status_code == 201, added.text
    roots = (str(tmp_path), str(_data_dir), "/var/lib/", "/var/log/")
    tenant = world.client("alpha-manager")
    asked = [("GET", "/api/vms/a2", None), ("GET", "/api/images", None), ("GET", f"/api/images/{image}", None),
             ("GET", "/api/isos", None), ("POST", "/api/vms/a1/media", {"iso": "missing.iso"})]
    for method, path, body in asked:
        theirs = tenant.request(method, path, json=body)
        ours = client.request(method, path, json=body)
        assert theirs.status_code == ours.status_code, (path, theirs.text)
        assert _paths_in(theirs.text, roots) == [], (path, theirs.text)
        if path != "/api/isos":  # (the ISO list has always left the path out for tenants)
            assert _paths_in(ours.text, roots) != [], (path, ours.text)
    shown = tenant.get("/api/vms/a2").json()
    cdrom = next(d for d in shown["disks"] if d["device"] == "cdrom")
    assert cdrom["source"] == "tools.iso"  # the file's name is still there: the web UI shows it
    assert "missing.iso" in tenant.post("/api/vms/a1/media", json={"iso": "missing.iso"}).json()["detail"]
    # The app's own URLs are not host paths: a console ticket's path is unchanged.
    assert tenant.post("/api/vms/a1/start").status_code == 200
    ticket = tenant.post("/api/vms/a1/console/ticket", json={"kind": "serial"}).json()
    assert ticket["path"].startswith("/api/vms/a1/console/serial?ticket=")


@pytest.mark.parametrize(("text", "hidden"), [
    ("ISO /var/lib/vmdeck/isos/x.iso does not exist", "ISO x.iso does not exist"),
    ("/var/lib/vmdeck/pool/web-vda.qcow2", "web-vda.qcow2"),
    ("cannot open '/srv/images/a b/disk.qcow2'", "cannot open 'a b/disk.qcow2'"),
    ("see /api/vms/web and /vms/web", "see /api/vms/web and /vms/web"),
    ("qemu:///system and http://host/x/y", "qemu:///system and http://host/x/y"),
    ("no space left on /var/lib/vmdeck/isos/ for x.iso", "no space left on isos for x.iso"),
])
def test_hide_host_paths(text: str, hidden: str) -> None:
    assert hide_host_paths(text, frozenset({"api", "static", "vms"})) == hidden
    json.dumps(hidden)


def test_the_guests_own_answers_keep_their_paths() -> None:
    """exec's output and the agent's guest info are the guest's paths, not the host's: unchanged."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from vmdeck.api.hostpaths import HostPathsMiddleware

    def answer(_request: object) -> JSONResponse:
        return JSONResponse({"stdout": "/usr/bin/env\n", "disk": "/var/lib/vmdeck/pool/x-vda.qcow2"})

    app = Starlette(routes=[Route(p, answer, methods=["GET", "POST"])
                            for p in ("/api/vms/{name}/exec", "/api/vms/{name}/guest", "/api/vms/{name}")])
    app.add_middleware(HostPathsMiddleware)  # no principal: treated as a tenant
    with TestClient(app) as anyone:
        for path in ("/api/vms/web/exec", "/api/vms/web/guest"):
            assert anyone.post(path).json()["stdout"] == "/usr/bin/env\n", path
        assert anyone.get("/api/vms/web").json() == {"stdout": "env\n", "disk": "x-vda.qcow2"}

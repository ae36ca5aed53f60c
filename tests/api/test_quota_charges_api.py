"""A create from a library image without disk_gib is charged the image's virtual size (issue 19), through the
REST API and through the command (the same use case), on libvirt's test driver.

Snapshots and linked clones change real image files: tests/integration/test_quota_charges.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from testdriver import NODE_XML
from vmdeck.images.library import import_image


@pytest.fixture
def base(tmp_path: Path, _data_dir: Path) -> str:
    path = tmp_path / "cloud.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "2G"], check=True)
    return import_image(path, name="cloud", os_name="debian").name


def _disk_used(client: TestClient, project: str) -> float:
    return float(client.get(f"/api/projects/{project}").json()["quota"]["disk_gib"]["used"])


def test_a_create_from_an_image_is_charged_its_virtual_size(client: TestClient, base: str) -> None:
    # (The test driver cannot upload the cloud-init seed, so no create from an image succeeds here: the
    # refusals come first, before anything is made.)
    assert client.post("/api/projects", json={"name": "img", "quota": {"disk_gib": 1.5}}).status_code == 201
    refused = client.post("/api/vms", json={"name": "first", "image": base, "project": "img"})
    assert refused.status_code == 409 and refused.json()["error"] == "quota_exceeded", refused.text
    assert refused.json()["detail"] == ("quota exceeded in project img: disk_gib limit 1.5 GiB, in use 0 GiB, "
                                        "this needs 2 GiB more")
    assert client.get("/api/vms/first").status_code == 404
    assert _disk_used(client, "img") == 0.0
    # A larger disk_gib is charged instead of the image's size, not on top of it.
    assert client.patch("/api/projects/img", json={"quota": {"disk_gib": 2.5}}).status_code == 200
    bigger = client.post("/api/vms", json={"name": "first", "image": base, "disk_gib": 3, "project": "img"})
    assert bigger.status_code == 409 and bigger.json()["detail"].endswith("this needs 3 GiB more")
    assert _disk_used(client, "img") == 0.0


def test_the_command_charges_the_image_too(tmp_path: Path, base: str, _data_dir: Path) -> None:
    (tmp_path / "pool").mkdir(exist_ok=True)
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(pool=tmp_path / "pool"))
    env = {**os.environ, "VMDECK_URI": f"test://{node}", "VMDECK_DB": str(tmp_path / "cli" / "vmdeck.sqlite"),
           "VMDECK_DATA_DIR": str(_data_dir)}

    def vmdeck(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vmdeck.cli.main", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    assert vmdeck("project", "create", "img", "--disk", "1.5").returncode == 0
    refused = vmdeck("create", "fromimg", "--image", base, "--project", "img")
    assert refused.returncode == 4, refused.stderr
    assert "disk_gib limit 1.5 GiB, in use 0 GiB, this needs 2 GiB more" in refused.stderr

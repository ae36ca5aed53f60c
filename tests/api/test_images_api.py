"""Image library and create-from-image through the REST API (libvirt's test driver)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vmdeck.images.library import import_image


@pytest.fixture
def base(tmp_path: Path, _data_dir: Path) -> str:
    path = tmp_path / "cloud.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "2G"], check=True)
    return import_image(path, name="cloud", os_name="debian").name


def test_images_are_listed(client: TestClient, base: str) -> None:
    (image,) = client.get("/api/images").json()
    assert (image["name"], image["format"], image["virtual_size"], image["os"]) == (base, "qcow2", 2 * 2**30,
                                                                                     "debian")
    assert client.get(f"/api/images/{base}").json()["name"] == base
    assert client.get("/api/images/nope").status_code == 404


@pytest.mark.parametrize(("extra", "status", "field"), [
    ({"user_data": "runcmd: [ls]\n"}, 422, "user_data"),
    ({"user_data": "#cloud-config\n- a\n"}, 422, "user_data"),
    ({"ssh_keys": ["not a key"]}, 422, "ssh_keys"),
    ({"hostname": "bad_host"}, 422, "hostname"),
    ({"user": "root"}, 422, "user"),
    ({"disk_gib": 1}, 422, "disk_gib"),
    ({"image": "no-such-image"}, 404, None),
])
def test_create_from_image_refuses_bad_input(client: TestClient, base: str, extra: dict, status: int,
                                             field: str | None) -> None:
    body = {"name": "fromimg", "image": base, **extra}
    reply = client.post("/api/vms", json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["field"] == field
    assert [v["name"] for v in client.get("/api/vms").json()] == ["busy"]  # nothing half-made


def test_cloud_init_fields_need_an_image(client: TestClient) -> None:
    reply = client.post("/api/vms", json={"name": "plain", "template": "q35-virtio", "hostname": "h"})
    assert reply.status_code == 422 and reply.json()["field"] == "image"



def test_an_arm64_image_gets_the_arm64_template(client: TestClient, tmp_path: Path) -> None:
    """Without a template, a create from an aarch64 image uses debian-12-arm64 (the web form reads it
    from the image list); the x86_64 template with that image is refused, naming the image."""
    path = tmp_path / "arm.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "2G"], check=True)
    import_image(path, name="arm", os_name="debian", arch="aarch64")
    shown = client.get("/api/images/arm").json()
    assert (shown["arch"], shown["template"]) == ("aarch64", "debian-12-arm64")
    # disk_gib below the image's size is checked after the image's arch matched the template's.
    reply = client.post("/api/vms", json={"name": "armvm", "image": "arm", "disk_gib": 1})
    assert reply.status_code == 422 and reply.json()["field"] == "disk_gib", reply.text
    reply = client.post("/api/vms", json={"name": "armvm", "image": "arm", "template": "debian-12"})
    assert reply.status_code == 422 and reply.json()["field"] == "image"
    assert "image 'arm' is aarch64, the VM is x86_64" in reply.json()["detail"]
    assert [v["name"] for v in client.get("/api/vms").json()] == ["busy"]

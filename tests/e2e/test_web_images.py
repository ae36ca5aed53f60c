"""The create form's image and cloud-init fields in headless Chromium, against a real `vmdeck serve` and
real libvirtd (issue 10). Nothing is booted: a Debian first boot under TCG takes minutes, and what the
form owes is on the host already (tests/integration/test_debian_image.py boots such a VM).

Picking an image switches the template to the image's own, the fields reach the NoCloud seed (read back
with pycdlib from the volume libvirt holds) and the disk is an overlay on the library image (qemu-img).
A user-data that is not #cloud-config is shown next to its field and creates nothing.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import httpx
import pycdlib
import pytest
import yaml
from browser_helpers import Server, sign_in_as_admin
from playwright.sync_api import Page, expect

from vmdeck.host.connection import Host
from vmdeck.images.debian import build_image
from vmdeck.images.library import ImageRecord
from vmdeck.storage.pool import ensure_pool


@pytest.fixture(scope="module")
def image() -> ImageRecord:
    return build_image("debian-12")  # scripts/setup-host.sh built it: instant unless missing


@pytest.fixture(scope="module")
def api(server: Server) -> httpx.Client:
    return server.api()


@pytest.fixture(scope="module")
def signed_in(page: Page) -> Page:
    return sign_in_as_admin(page)


@pytest.fixture(scope="module")
def public_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    key = tmp_path_factory.mktemp("key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmdeck-e2e-form", "-f", str(key)],
                   check=True)
    return Path(f"{key}.pub").read_text().strip()


def _pool_volumes(host: Host, prefix: str) -> set[str]:
    """The pool's volumes named after one VM: the pool is shared with concurrent tests and runs."""
    pool = ensure_pool(host)
    pool.refresh()
    return {name for name in pool.volume_names() if name.startswith(prefix)}


def _seed_files(path: str) -> dict[str, str]:
    iso = pycdlib.PyCdlib()
    iso.open(path)
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        files = {}
        for name in ("meta-data", "user-data"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            files[name] = out.getvalue().decode()
        return files
    finally:
        iso.close()


def _fill_image_form(page: Page, name: str, user_data: str, public_key: str) -> None:
    page.goto("/create")
    expect(page.locator("#f-template")).to_have_value("tiny")
    expect(page.locator("#cloud-init")).to_be_hidden()
    page.fill("#f-name", name)
    page.select_option("#f-image", "debian-12")
    # The image brings its own template (an x86_64 Debian one) and the cloud-init fields.
    expect(page.locator("#f-template")).to_have_value("debian-12")
    expect(page.locator("#cloud-init")).to_be_visible()
    expect(page.locator("#template-info")).to_contain_text("x86_64 q35, 2 vCPU, 1024 MiB")
    page.fill("#f-hostname", "formhost")
    page.fill("#f-user", "carol")
    page.fill("#f-ssh-key", public_key)
    page.fill("#f-user-data", user_data)


def test_user_data_that_is_not_cloud_config_is_shown_and_creates_nothing(
        signed_in: Page, server: Server, api: httpx.Client, host: Host, image: ImageRecord, vm_name: str,
        public_key: str) -> None:
    before = _pool_volumes(host, vm_name)
    _fill_image_form(signed_in, vm_name, "runcmd:\n  - [touch, /tmp/x]\n", public_key)
    signed_in.click("#create-submit")
    error = signed_in.locator('.field-error[data-for="user_data"]')
    expect(error).to_contain_text("user-data must be a cloud-config document: its first line must be "
                                  "'#cloud-config'", timeout=60_000)
    expect(signed_in).to_have_url(f"{server.url}/create")
    assert api.get(f"/api/vms/{vm_name}").status_code == 404
    assert _pool_volumes(host, vm_name) == before  # no overlay, no seed


def test_image_fields_reach_the_seed_and_the_disk_is_an_overlay(
        signed_in: Page, server: Server, api: httpx.Client, image: ImageRecord, vm_name: str, public_key: str) -> None:
    token = f"token-{vm_name[-6:]}"
    user_data = f"#cloud-config\nruncmd:\n  - [sh, -c, 'echo {token} > /var/tmp/vmdeck-token']\n"
    _fill_image_form(signed_in, vm_name, user_data, public_key)
    signed_in.click("#create-submit")
    expect(signed_in).to_have_url(f"{server.url}/vms/{vm_name}", timeout=120_000)
    expect(signed_in.locator("#vm-state")).to_have_text("shut off")

    vm = api.get(f"/api/vms/{vm_name}").json()
    assert (vm["template"], vm["arch"], vm["extra"]["base-image"], vm["extra"]["login-user"]) == (
        "debian-12", "x86_64", "debian-12", "carol")
    disk, seed = (d for d in vm["disks"] if d["device"] == "disk")
    # The first disk: vmdeck's overlay whose backing file is the library image, never the image itself.
    assert disk["owned"] and disk["source"] != image.path and disk["format"] == "qcow2"
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", disk["source"]],
                                     capture_output=True, text=True, timeout=60, check=True).stdout)
    assert info["backing-filename"] == image.path and info["virtual-size"] == image.virtual_size
    # The seed: a read-only raw volume vmdeck owns, an ISO labelled cidata with the form's values.
    assert seed["owned"] and seed["readonly"] and seed["format"] == "raw"
    files = _seed_files(seed["source"])
    meta = yaml.safe_load(files["meta-data"])
    assert meta["local-hostname"] == "formhost" and meta["instance-id"].startswith(f"iid-{vm_name}-")
    assert files["user-data"].startswith("#cloud-config\n")
    config = yaml.safe_load(files["user-data"])
    assert config["hostname"] == "formhost"
    assert config["runcmd"] == [["sh", "-c", f"echo {token} > /var/tmp/vmdeck-token"]]
    (user,) = config["users"]
    assert user["name"] == "carol" and user["ssh_authorized_keys"] == [public_key]
    assert user["lock_passwd"] is True and "passwd" not in user  # no password was given
    # vmdeck ssh's port forward is in the domain (loopback only).
    (forward,) = vm["port_forwards"]
    assert (forward["address"], forward["guest_port"]) == ("127.0.0.1", 22)


def test_delete_removes_the_overlay_and_seed_but_not_the_image(api: httpx.Client, image: ImageRecord,
                                                                vm_name: str) -> None:
    volumes = [d["source"] for d in api.get(f"/api/vms/{vm_name}").json()["disks"] if d["owned"]]
    assert len(volumes) == 2
    assert api.delete(f"/api/vms/{vm_name}").status_code == 200
    assert api.get(f"/api/vms/{vm_name}").status_code == 404
    assert not any(Path(v).exists() for v in volumes)
    assert Path(image.path).is_file()

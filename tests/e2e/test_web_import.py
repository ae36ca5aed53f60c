"""The Import page in headless Chromium against a real `vmdeck serve` and libvirtd: an OVA uploaded with
progress, its plan shown (what is not honoured too) with nothing created, then imported into a VM whose
converted disk holds the package's bytes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import PREFIX, sign_in_as_admin
from playwright.sync_api import Page, expect

from vmdeck.domxml.parse import parse_domain
from vmdeck.host.connection import Host
from vmdeck.storage.pool import ensure_pool, pool_path
from vmdeck.vm import lifecycle

sys.path.insert(0, str(Path(__file__).parent.parent))
from ovabuild import build_ova  # noqa: E402

MARKER = b"vmdeck-web-import"


@pytest.fixture
def imported_name(host: Host) -> Iterator[str]:
    name = f"{PREFIX}imp-{uuid.uuid4().hex[:6]}"
    yield name
    if host.exists(name):
        lifecycle.delete(host, name, force=True)


def test_plan_then_import(page: Page, host: Host, imported_name: str, tmp_path: Path) -> None:
    raw = tmp_path / "disk.img"
    raw.write_bytes(MARKER + bytes((8 << 20) - len(MARKER)))
    ova = build_ova(tmp_path, raw, "appliance", vcpus=2, memory_mib=192)
    sign_in_as_admin(page)
    page.goto("/import")
    page.set_input_files("#f-file", str(ova))
    page.fill("#f-name", imported_name)
    page.select_option("#f-disk-bus", "virtio")
    expect(page.locator("#import-button")).to_be_disabled()  # plan first
    page.click("#plan-button")
    plan = page.locator("#plan")
    expect(plan).to_be_visible()
    expect(page.locator("#plan-rows")).to_contain_text("CPUs2")
    expect(page.locator("#plan-rows")).to_contain_text("192 MiB")
    expect(page.locator("#plan-rows")).to_contain_text("appliance-disk1.vmdk (vmdk), 8.0 MiB on virtio (was SCSI")
    expect(page.locator("#plan-notes")).to_contain_text("attached to vmdeck's user-mode network")
    expect(page.locator("#upload-status")).to_have_text("planned: nothing was created")
    assert not host.exists(imported_name)

    page.click("#import-button")
    page.wait_for_url(f"**/vms/{imported_name}", timeout=120_000)
    view = parse_domain(host.lookup(imported_name).xml())
    assert (view.vcpus, view.memory_mib) == (2, 192)
    volume = Path(pool_path(ensure_pool(host))) / f"{imported_name}-vda.qcow2"
    assert str(volume) in view.owned_volumes
    compared = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(raw), str(volume)],
                              capture_output=True, text=True, timeout=120)
    assert compared.returncode == 0, compared.stdout + compared.stderr

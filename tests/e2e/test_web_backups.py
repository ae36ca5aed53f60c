"""The backups panel on the VM page, in headless Chromium against a real `vmdeck serve` and libvirtd.

A shut-off tiny VM (each backup starts it paused; the guest never runs), its disk written on the host:
back up twice from the panel (full, then incremental), restore as a new VM and in place (confirmed,
naming what is replaced), schedule; each effect is checked on the host (the repository, the VMs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import PASSWORD, Server
from playwright.sync_api import Page, expect

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.paths import pool_dir
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.storage.backup_repo import Repository
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm


@pytest.fixture(scope="module", autouse=True)
def repo() -> Iterator[Path]:
    """The server's backup repository: a folder QEMU's user can reach (set before the server starts)."""
    folder = Path(tempfile.mkdtemp(prefix="vmdeck-test-web-backups-", dir="/var/tmp"))
    folder.chmod(0o711)
    saved = os.environ.get("VMDECK_BACKUP_REPO")
    os.environ["VMDECK_BACKUP_REPO"] = str(folder / "repo")
    yield folder / "repo"
    if saved is None:
        os.environ.pop("VMDECK_BACKUP_REPO", None)
    else:
        os.environ["VMDECK_BACKUP_REPO"] = saved
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def backup_vm(host: Host, vm_name: str) -> Iterator[str]:
    create_vm(host, resolve("tiny", vm_name, Overrides(memory_mib=128)))
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 8M", str(pool_dir() / f"{vm_name}-vda.qcow2")],
                   check=True, capture_output=True)
    yield vm_name
    with contextlib.suppress(NotFound):
        lifecycle.delete(host, f"{vm_name}-r", force=True)


def test_backups_panel_create_restore_schedule(page: Page, server: Server, host: Host, backup_vm: str,
                                               repo: Path) -> None:
    page.goto(f"/vms/{backup_vm}")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(f"{server.url}/vms/{backup_vm}")
    page.goto(f"/vms/{backup_vm}#backups")
    rows = page.locator("#backup-list tbody")
    expect(rows).to_contain_text("no backups yet")

    page.click("#backup-create")
    expect(rows.locator("tr[data-backup]")).to_have_count(1, timeout=300_000)
    expect(rows).to_contain_text("full")
    page.click("#backup-create")
    expect(rows.locator("tr[data-backup]")).to_have_count(2, timeout=300_000)
    expect(rows.locator("tr[data-backup]").first).to_contain_text("incremental")
    made = Repository(repo).manifests(backup_vm)
    assert [m.kind for m in made] == ["full", "incremental"]
    assert lifecycle.current_state(host.lookup(backup_vm)) == "shut off"

    # As a new VM: no question asked, nothing is replaced.
    page.fill("#backup-restore-as", f"{backup_vm}-r")
    rows.locator(f'tr[data-backup="{made[0].id}"] button[data-backup-action="restore"]').click()
    expect(page.locator("#backup-result")).to_contain_text("restored as a new VM", timeout=300_000)
    assert host.exists(f"{backup_vm}-r")

    # In place: the confirmation names the VM and what goes.
    uuid = host.lookup(backup_vm).uuid()
    page.fill("#backup-restore-as", "")
    rows.locator(f'tr[data-backup="{made[1].id}"] button[data-backup-action="restore"]').click()
    expect(page.locator("#confirm-message")).to_contain_text(f"Replace {backup_vm} with backup {made[1].id}")
    page.click("#confirm-ok")
    expect(page.locator("#backup-result")).to_contain_text("restored in place", timeout=300_000)
    assert host.lookup(backup_vm).uuid() == uuid

    rows.locator(f'tr[data-backup="{made[1].id}"] button[data-backup-action="verify"]').click()
    expect(page.locator("#backup-result")).to_contain_text("all intact")

    page.fill("#backup-every", "6h")
    page.fill("#backup-keep", "2")
    page.click("#backup-schedule")
    expect(page.locator("#backup-schedule-now")).to_contain_text("every 6 h, keeping 2")
    page.click("#backup-unschedule")
    expect(page.locator("#backup-schedule-now")).to_contain_text("no schedule")

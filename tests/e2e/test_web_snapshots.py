"""The snapshots panel on the VM page, in headless Chromium against a real `vmdeck serve` and libvirtd.

A shut-off tiny VM (no boot needed: disk-only snapshots of a stopped VM are what is exercised):
take two snapshots from the form, see the tree, revert and delete with the confirmation dialog,
and clone it; each effect is checked on the host too (the domain's disks, the new VM).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from browser_helpers import PASSWORD, Server
from playwright.sync_api import Page, expect

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm
from vmdeck.vm.snapshot_ops import list_snapshots


@pytest.fixture(scope="module")
def snap_vm(host: Host, vm_name: str) -> Iterator[str]:
    create_vm(host, resolve("tiny", vm_name, Overrides(memory_mib=128)))
    yield vm_name
    with contextlib.suppress(NotFound):
        lifecycle.delete(host, f"{vm_name}-c", force=True)


def _sign_in(page: Page, server: Server, path: str) -> None:
    page.goto(path)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(f"{server.url}{path}")


def test_snapshot_panel_tree_revert_delete_clone(page: Page, server: Server, host: Host, snap_vm: str) -> None:
    _sign_in(page, server, f"/vms/{snap_vm}")
    page.goto(f"/vms/{snap_vm}#snapshots")  # the VM page's Snapshots tab (once the page has loaded)
    tree = page.locator("#snap-tree")
    expect(tree).to_contain_text("no snapshots yet")

    page.fill("#snap-name", "first")
    page.fill("#snap-description", "from the browser")
    page.click("#snap-create")
    expect(tree.locator('li[data-snapshot="first"]')).to_contain_text("from the browser")
    page.fill("#snap-name", "second")
    page.fill("#snap-description", "")
    page.click("#snap-create")
    # "second" hangs under "first" and is where the VM stands.
    child = tree.locator('li[data-snapshot="first"] li[data-snapshot="second"]')
    expect(child).to_have_class("current")

    # A bad name is refused with the server's message; nothing is added.
    page.fill("#snap-name", "x/y")
    page.click("#snap-create")
    expect(page.locator("#toast")).to_contain_text("invalid snapshot name")
    assert [s.name for s in list_snapshots(host, snap_vm).snapshots] == ["first", "second"]

    # Revert and delete ask first, in the page's confirmation dialog.
    tree.locator('li[data-snapshot="first"] > button[data-snap-action="revert"]').click()
    expect(page.locator("#confirm-message")).to_contain_text("Revert")
    page.click("#confirm-ok")
    expect(tree.locator('li[data-snapshot="first"]')).to_have_class("current")
    assert list_snapshots(host, snap_vm).current == "first"

    tree.locator('li[data-snapshot="second"] button[data-snap-action="delete"]').click()
    expect(page.locator("#confirm-message")).to_contain_text("Delete snapshot second")
    page.click("#confirm-ok")
    expect(tree.locator('li[data-snapshot="second"]')).to_have_count(0)
    assert [s.name for s in list_snapshots(host, snap_vm).snapshots] == ["first"]

    page.fill("#clone-name", f"{snap_vm}-c")
    page.click("#clone-create")
    expect(page.locator("#toast")).to_contain_text("linked clone")
    assert host.exists(f"{snap_vm}-c")

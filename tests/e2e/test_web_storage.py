"""Storage on the VM page and the Networks page, in headless Chromium against a real `vmdeck serve`, real
libvirtd and the tiny guest (issue 20 item 10, issue 24's web UI).

One running VM for the module, in a project with a member: the administrator adds a disk from the Disks tab,
grows it (the page and the guest's /sys/block see the new size), removes it keeping the volume (listed as
kept), reattaches it (the guest sees it again) and deletes it (gone from the pool); the member sees the same
tab at 420 px. On /networks the administrator creates and deletes a network (libvirt sees both), and the
member sees only their project's network. Screenshots in /tmp/web-storage.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_helpers import PASSWORD, Server, pages_by_width, tall_table_cells, tiny_vm_of, until
from playwright.sync_api import Browser, Page, expect

from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.vm.agent import guest_exec

WIDTHS = (1366, 420)
MEMBER_PASSWORD = "e2e-member-password"
SHOTS = "/tmp/web-storage"
GIB = 2**30


@pytest.fixture(scope="module")
def api(server: Server) -> httpx.Client:
    return server.api()


@pytest.fixture(scope="module")
def member(api: httpx.Client) -> dict[str, str]:
    tag = uuid.uuid4().hex[:6]
    names = {"project": f"stor-{tag}", "user": f"stormgr-{tag}", "other": f"storx-{tag}"}
    for project in (names["project"], names["other"]):
        api.post("/api/projects", json={"name": project}).raise_for_status()
    api.post("/api/auth/users", json={"username": names["user"], "password": MEMBER_PASSWORD,
                                      "project": names["project"], "role": "manager"}).raise_for_status()
    return names


@pytest.fixture(scope="module")
def vm(api: httpx.Client, vm_name: str, member: dict[str, str], host: Host) -> str:
    return tiny_vm_of(api, host, vm_name, member["project"])


@pytest.fixture(scope="module")
def admin_pages(browser: Browser, server: Server) -> Iterator[dict[int, Page]]:
    with pages_by_width(browser, server, "admin", PASSWORD, WIDTHS) as pages:
        yield pages


@pytest.fixture(scope="module")
def member_pages(browser: Browser, server: Server, member: dict[str, str]) -> Iterator[dict[int, Page]]:
    with pages_by_width(browser, server, member["user"], MEMBER_PASSWORD, WIDTHS) as pages:
        yield pages


def _guest_sizes(host: Host, vm: str) -> dict[str, int]:
    """The guest's block devices and their sizes in 512-byte sectors, as its kernel sees them."""
    script = 'for d in /sys/block/vd*; do echo "${d##*/} $(cat $d/size)"; done'
    out = guest_exec(host.lookup(vm), ["/bin/sh", "-c", script], timeout=60).stdout.decode()
    return {name: int(size) for name, size in (line.split() for line in out.splitlines() if line.strip())}


def _look(page: Page, name: str) -> None:
    os.makedirs(SHOTS, exist_ok=True)
    assert tall_table_cells(page) == [], f"table cells split on {page.url}"
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"{page.url} scrolls sideways at {inner} px ({scroll} px wide)"
    page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def test_disks_grow_and_kept_volumes_come_back_or_go(admin_pages: dict[int, Page], member_pages: dict[int, Page],
                                                     api: httpx.Client, host: Host, vm: str) -> None:
    page = admin_pages[1366]
    page.goto(f"/vms/{vm}#disks")
    vda = page.locator('#device-table tr[data-key="vda"]')
    expect(vda.locator("td.size")).to_contain_text("GiB")
    expect(vda.locator("td.image")).to_contain_text("vmdeck volume")
    before = set(_guest_sizes(host, vm))
    # Add a disk from the page; the guest sees it.
    page.fill("#disk-size", "0.1")
    page.click("#disk-add")
    vdb = page.locator('#device-table tr[data-key="vdb"]')
    expect(vdb).to_be_visible(timeout=60_000)
    new = until(lambda: set(_guest_sizes(host, vm)) - before, "the new disk in the guest", timeout=120)
    (device,) = new  # type: ignore[misc]
    # Grow it to 0.25 GiB from the page: the page and the guest's kernel see the new size.
    page.select_option("#resize-target", "vdb")
    page.fill("#resize-size", "0.05")
    page.click("#resize-go")
    expect(page.locator("#resize-error")).to_contain_text("only grow")
    page.fill("#resize-size", "0.25")
    page.click("#resize-go")
    expect(vdb.locator("td.size")).to_have_text("0.25 GiB", timeout=60_000)
    expect(page.locator("#resize-error")).to_be_hidden()
    until(lambda: _guest_sizes(host, vm).get(device) == GIB // 4 // 512, "the grown size in the guest", timeout=120)
    for width, shown in admin_pages.items():
        shown.goto(f"/vms/{vm}#disks")
        expect(shown.locator('#device-table tr[data-key="vdb"] td.size')).to_have_text("0.25 GiB")
        _look(shown, f"disks-admin-{width}")
    # Remove it, keeping the volume: it is listed as kept, and the file stays.
    source = next(d["source"] for d in api.get(f"/api/vms/{vm}/storage").json()["disks"] if d["target"] == "vdb")
    volume = Path(source).name
    vdb.locator("button.remove").click()
    expect(page.locator("#confirm-option")).to_be_checked()
    page.click("#confirm-ok")
    expect(vdb).to_have_count(0, timeout=90_000)
    kept = page.locator(f'#kept-table tr[data-volume="{volume}"]')
    expect(kept).to_be_visible(timeout=30_000)
    expect(kept).to_contain_text("0.25 GiB")
    until(lambda: device not in _guest_sizes(host, vm), "the disk gone from the guest", timeout=120)
    assert Path(source).exists()
    # The member (a manager of the VM's project) sees the kept volume too, at both widths.
    for width, shown in member_pages.items():
        shown.goto(f"/vms/{vm}#disks")
        # The storage answer looks at every VM and pool file of the host: allow a loaded host its time.
        expect(shown.locator(f'#kept-table tr[data-volume="{volume}"]')).to_be_visible(timeout=60_000)
        expect(shown.locator(f'#kept-table tr[data-volume="{volume}"] button.reattach')).to_be_visible()
        body = shown.locator("body").inner_text()
        assert "/var/lib" not in body and "/pool/" not in body, "a host path on a tenant's page"
        _look(shown, f"disks-member-{width}")
    # Reattach: a disk again, in the page and in the guest, with its grown size.
    kept.locator("button.reattach").click()
    expect(page.locator('#device-table tr[data-key="vdb"]')).to_be_visible(timeout=60_000)
    expect(kept).to_have_count(0)
    until(lambda: GIB // 4 // 512 in _guest_sizes(host, vm).values(), "the reattached disk in the guest", timeout=120)
    # Remove it again (kept), then delete the kept volume: the dialog names it, and it leaves the pool.
    page.locator('#device-table tr[data-key="vdb"] button.remove').click()
    page.click("#confirm-ok")
    expect(page.locator('#device-table tr[data-key="vdb"]')).to_have_count(0, timeout=90_000)
    expect(kept).to_be_visible(timeout=30_000)
    kept.locator("button.purge").click()
    expect(page.locator("dialog#confirm")).to_contain_text(volume)
    expect(page.locator("dialog#confirm")).to_contain_text("cannot be undone")
    page.click("#confirm-ok")
    expect(kept).to_have_count(0, timeout=30_000)
    expect(page.locator("#kept-table")).to_contain_text("No kept volumes.")
    assert not Path(source).exists(), "the deleted volume's file is still there"
    vols = subprocess.run(["virsh", "-c", "qemu:///system", "vol-list", "vmdeck"], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    assert volume not in vols


@pytest.fixture(scope="module")
def networks_made(host: Host) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        with contextlib.suppress(VmdeckError):
            net = host.conn.network(name)
            if net.is_active():
                net.destroy()
            net.undefine()


def _virsh_networks() -> set[str]:
    out = subprocess.run(["virsh", "-c", "qemu:///system", "net-list", "--all", "--name"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def _free_subnet(api: httpx.Client) -> str:
    taken = {n["subnet"] for n in api.get("/api/networks").json()}
    for _ in range(50):
        candidate = f"10.{uuid.uuid4().int % 40 + 200}.{uuid.uuid4().int % 250}.0/24"
        if candidate not in taken:
            return candidate
    raise AssertionError("no free subnet")


def test_networks_page_creates_and_deletes_and_a_member_sees_their_projects(
        admin_pages: dict[int, Page], member_pages: dict[int, Page], api: httpx.Client, member: dict[str, str],
        networks_made: list[str], vm: str) -> None:
    tag = uuid.uuid4().hex[:5]
    mine, theirs = f"vt{os.getpid()}-{tag}-a", f"vt{os.getpid()}-{tag}-b"
    networks_made.extend([mine, theirs])
    page = admin_pages[1366]
    page.goto("/networks")
    expect(page.locator("#networks")).to_have_attribute("data-loaded", "true")
    subnet = _free_subnet(api)
    # Create the member's project's network from the page; libvirt has it.
    page.fill("#net-name", mine)
    page.select_option("#net-mode", "isolated")
    page.fill("#net-subnet", subnet)
    page.select_option("#net-project", member["project"])
    page.click("#net-create")
    row = page.locator(f'#network-table tr[data-network="{mine}"]')
    expect(row).to_be_visible(timeout=60_000)
    expect(row).to_contain_text(subnet)
    expect(row).to_contain_text(member["project"])
    assert mine in _virsh_networks()
    # A bad subnet: said under its field, nothing made.
    page.fill("#net-name", f"{mine}x")
    page.fill("#net-subnet", "8.8.8.0/24")
    page.click("#net-create")
    expect(page.locator('#network-form .field-error[data-for="subnet"]')).to_be_visible()
    assert f"{mine}x" not in _virsh_networks()
    page.fill("#net-name", "")
    # Another project's network (through the API): the member never sees it.
    reply = api.post("/api/networks", json={"name": theirs, "mode": "nat", "subnet": _free_subnet(api),
                                            "project": member["other"]})
    assert reply.status_code == 201, reply.text
    for width, shown in member_pages.items():
        shown.goto("/networks")
        expect(shown.locator("#networks")).to_have_attribute("data-loaded", "true")
        expect(shown.locator(f'#network-table tr[data-network="{mine}"]')).to_be_visible()
        expect(shown.locator(f'#network-table tr[data-network="{theirs}"]')).to_have_count(0)
        expect(shown.locator('header nav a[href="/networks"]')).to_be_visible()
        _look(shown, f"networks-member-{width}")
    # The VM's Network tab: each NIC's network and MAC, and the guest's address (its agent answers).
    vm_page = member_pages[420]
    vm_page.goto(f"/vms/{vm}#network")
    nic_row = vm_page.locator("#nic-addresses tbody tr").first
    expect(nic_row).to_contain_text("user-mode networking")
    expect(nic_row.locator("td.address")).to_contain_text("10.0.2.15", timeout=60_000)
    _look(vm_page, "nics-member-420")
    for width, shown in admin_pages.items():
        shown.goto("/networks")
        expect(shown.locator(f'#network-table tr[data-network="{theirs}"]')).to_be_visible()
        _look(shown, f"networks-admin-{width}")
    # Delete from the page: the dialog names it; libvirt no longer has it.
    page.goto("/networks")
    page.locator(f'#network-table tr[data-network="{mine}"] button.delete').click()
    expect(page.locator("dialog#confirm")).to_contain_text(mine)
    page.click("#confirm-ok")
    expect(page.locator(f'#network-table tr[data-network="{mine}"]')).to_have_count(0, timeout=60_000)
    assert mine not in _virsh_networks()

"""The web UI across several hosts, in Chromium: the Hosts page (capacity bars, up / draining /
unreachable, drain and undrain, room held by a create in progress), the VM list's Host column, and a
VM page's migration card.

The server's registry holds two libvirt test-driver hosts (each `test://<node.xml>` its own fake
host, alive as long as the server's connection) and one that refuses connections; no `local`.
The test driver cannot migrate: the card's progress shows libvirt's refusal, and the VM stays.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from browser_helpers import PASSWORD, Server
from playwright.sync_api import Page, expect

from serving import free_port, wait_for_serve
from testdriver import fake_host_uri
from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.place import room_for
from vmdeck.cluster.registry import HostEntry, Registry


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve-hosts")
    db = folder / "web.sqlite"
    registry = Registry(db)
    registry.remove("local")
    registry.add(HostEntry("a", fake_host_uri(folder, "a"), vcpu_ratio=2, reserve_mib=7000))
    registry.add(HostEntry("b", fake_host_uri(folder, "b"), vcpu_ratio=2, reserve_mib=6000))
    registry.add(HostEntry("c", f"qemu+tcp://127.0.0.1:{free_port()}/system"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "VMDECK_URI"}
    env["VMDECK_ADMIN_PASSWORD"] = PASSWORD
    log = folder / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "vmdeck.cli.main", "serve", "--port", str(port),
                                    "--db", str(db)], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for_serve(url, process, log)
    yield Server(url, process, log)
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def test_hosts_page_list_column_and_migrate_card(page: Page, server: Server) -> None:
    page.goto("/hosts")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(f"{server.url}/hosts")
    a, b, c = (page.locator(f'tr[data-host="{name}"]') for name in "abc")
    expect(a.locator(".state")).to_have_text("up")
    # 8 GiB test hosts with one 256 MiB VM running; a keeps 7000 MiB for itself.
    expect(a.locator(".capacity-label").first).to_have_text("256 / 1192 MiB (7000 reserved)")
    expect(a.locator(".capacity-label").nth(1)).to_have_text("1 / 8 (4 pCPUs × 2)")
    width = a.locator(".capacity-fill").first.evaluate("e => e.style.width")
    assert width == "21%"  # 256 of 1192
    expect(c.locator(".state")).to_have_text("unreachable")
    expect(c.locator(".reason")).to_contain_text("Connection refused")
    expect(c.locator('button[data-action="drain"]')).to_be_disabled()

    # A create placed on b and not started yet: its room is shown as used, and named, until it ends.
    with Fleet(registry=Registry(server.log.parent / "web.sqlite")) as fleet, \
            room_for(fleet, "coming", 2, 700, host_name="b", new=True):
        page.reload()
        expect(b.locator(".capacity-label").first).to_have_text("956 / 2192 MiB (6000 reserved)")
        expect(b.locator(".pending")).to_have_text("700 MiB, 2 vCPU held for creates in progress")
    page.reload()
    expect(b.locator(".capacity-label").first).to_have_text("256 / 2192 MiB (6000 reserved)")
    expect(b.locator(".pending")).to_have_count(0)

    # Drain b: its VM cannot move (the test driver does not migrate), is reported, and b is draining.
    b.locator('button[data-action="drain"]').click()
    expect(page.locator("#toast")).to_contain_text("b: 0 VM(s) moved, 1 left", timeout=30_000)
    expect(page.locator("#drain-log")).to_contain_text("b: [1/1] busy-b: stays on b")
    expect(b.locator(".state")).to_have_text("draining")
    b.locator('button[data-action="undrain"]').click()
    expect(b.locator(".state")).to_have_text("up")

    page.goto("/")
    expect(page.locator('tr[data-vm="busy-a"] td.host')).to_have_text("a")
    expect(page.locator('tr[data-vm="busy-b"] td.host')).to_have_text("b")

    page.goto("/vms/busy-a")
    expect(page.locator("#migrate-current")).to_have_text("a")
    options = page.locator("#migrate-to option")
    expect(options).to_have_count(2)
    expect(page.locator('#migrate-to option[value="c"]')).to_be_disabled()
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    page.click("#migrate-go")
    expect(page.locator("#migrate-log")).to_contain_text("failed:", timeout=30_000)
    expect(page.locator("#toast")).to_contain_text("busy-a:")
    expect(page.locator("#migrate-current")).to_have_text("a")

"""Two customers of one host in headless Chromium: the second sees neither the first's VM in the list
nor its console, and the VM's own URL answers "not found" to them (real `vmdeck serve`, real libvirtd)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import httpx
import pytest
from browser_helpers import PREFIX, Server
from playwright.sync_api import Browser, Page, expect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.vm import lifecycle

USER_PASSWORD = "e2e-tenant-password"


def _signed_in(server: Server, username: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=120)
    reply = client.post("/api/auth/login", json={"username": username, "password": USER_PASSWORD})
    reply.raise_for_status()
    client.headers["Cookie"] = f"vmdeck_session={reply.cookies['vmdeck_session']}"
    client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
    return client


@pytest.fixture(scope="module")
def tenants(server: Server, host: Host) -> Iterator[dict[str, str]]:
    """Two projects with a manager each; the first owns one (shut-off) VM."""
    tag = uuid.uuid4().hex[:6]
    names = {"one": f"t9one-{tag}", "two": f"t9two-{tag}", "vm": f"{PREFIX}t9-{tag}"}
    admin = server.api()
    for key in ("one", "two"):
        admin.post("/api/projects", json={"name": names[key]}).raise_for_status()
        admin.post("/api/auth/users", json={"username": names[key], "password": USER_PASSWORD,
                                            "project": names[key], "role": "manager"}).raise_for_status()
    first = _signed_in(server, names["one"])
    made = first.post("/api/vms", json={"name": names["vm"], "template": "q35-virtio", "memory_mib": 128,
                                        "disk_gib": 0.1})
    assert made.status_code == 201, made.text
    yield names
    with contextlib.suppress(NotFound):
        lifecycle.delete(host, names["vm"], force=True)


def _browser_page(browser: Browser, server: Server, username: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.url)
    page = context.new_page()
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", USER_PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(f"{server.url}/")
    return page


def test_the_second_customer_sees_nothing_of_the_first(browser: Browser, server: Server,
                                                       tenants: dict[str, str]) -> None:
    vm = tenants["vm"]
    owner = _browser_page(browser, server, tenants["one"])
    expect(owner.locator(f'#vm-rows tr[data-vm="{vm}"]')).to_be_visible()
    expect(owner.locator(f'#vm-rows tr[data-vm="{vm}"] td.project')).to_have_text(tenants["one"])
    expect(owner.locator(f'#usage-rows tr[data-project="{tenants["one"]}"] td.quota-instances')).to_have_text("1 / —")

    other = _browser_page(browser, server, tenants["two"])
    expect(other.locator("#vm-rows")).to_contain_text("No VMs yet.")
    expect(other.locator(f'#vm-rows tr[data-vm="{vm}"]')).to_have_count(0)
    # The VM's own page, opened by URL: "not found", exactly as for a VM that does not exist.
    shown = other.goto(f"/vms/{vm}")
    assert shown is not None and shown.status == 404
    expect(other.locator("#error-detail")).to_contain_text(f"no VM named '{vm}'")
    missing = other.goto(f"/vms/{PREFIX}no-such-vm")
    assert missing is not None and missing.status == 404
    # Its console: no ticket (404, as for nothing), and the websocket refuses without one.
    second = _signed_in(server, tenants["two"])
    ticket = second.post(f"/api/vms/{vm}/console/ticket", json={"kind": "vnc"})
    assert ticket.status_code == 404, ticket.text
    first = _signed_in(server, tenants["one"])
    assert first.post(f"/api/vms/{vm}/console/ticket", json={"kind": "vnc"}).status_code == 409  # shut off: theirs
    ws_url = server.url.replace("http", "ws") + f"/api/vms/{vm}/console/vnc?ticket=guess"
    with pytest.raises(InvalidStatus), ws_connect(ws_url, additional_headers={"Cookie": second.headers["Cookie"]}):
        pass
    owner.context.close()
    other.context.close()

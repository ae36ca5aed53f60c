"""The web UI as Cockpit / Proxmox users expect it, in headless Chromium against a real `vmdeck serve`,
real libvirtd and the tiny guest (issue 14).

One VM for the module, made through the API and booted once half-way: the first tests look at it
shut off (placeholders, the screenshot's message, 404s, layouts), the later ones while it runs
(console toolbar, notices, confirmations). Every "nothing changed" is read back through the API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_helpers import Server, sign_in_as_admin, until, wait_for_screen_shell
from playwright.sync_api import Browser, Page, expect

from vmdeck.host.connection import Host
from vmdeck.paths import iso_dir
from vmdeck.storage.iso import make_iso
from vmdeck.vm.agent import guest_exec
from vmdeck.vm.lifecycle import wait_ready

WIDTHS = (360, 420, 768, 1280)



@pytest.fixture(scope="module")
def api(server: Server) -> httpx.Client:
    return server.api()


@pytest.fixture(scope="module")
def vm(api: httpx.Client, vm_name: str) -> str:
    reply = api.post("/api/vms", json={"name": vm_name, "template": "tiny", "memory_mib": 128})
    assert reply.status_code == 201, reply.text
    return vm_name


@pytest.fixture(scope="module")
def signed_in(page: Page) -> Page:
    return sign_in_as_admin(page)


@pytest.fixture(scope="module")
def library_iso(vm_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("ux-iso")
    (folder / "hello.txt").write_text("hello\n")
    iso = make_iso(folder, iso_dir() / f"{vm_name}-ux.iso")
    yield iso.name
    iso.unlink(missing_ok=True)


def _cancel_dialog(page: Page, *names: str) -> None:
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    for name in names:
        expect(dialog).to_contain_text(name)
    page.click("#confirm-cancel")
    expect(dialog).to_have_count(0)


def test_unknown_vm_is_a_404_page_and_the_favicon_is_served(signed_in: Page, server: Server) -> None:
    reply = signed_in.goto("/vms/no-such-vm")
    assert reply is not None and reply.status == 404
    expect(signed_in.locator("#not-found")).to_contain_text("no-such-vm")
    expect(signed_in.locator("#power")).to_have_count(0)
    assert signed_in.goto("/no/such/page").status == 404  # type: ignore[union-attr]
    icon = signed_in.request.get(f"{server.url}/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg")


def test_every_page_shows_the_event_stream_live(signed_in: Page, vm: str) -> None:
    for path in ("/", "/create", "/host", f"/vms/{vm}"):
        signed_in.goto(path)
        expect(signed_in.locator("#stream-status")).to_have_attribute("data-state", "live")
        expect(signed_in.locator("#stream-status")).to_have_text("event stream: live")


def test_a_stopped_vm_shows_placeholders_and_the_screenshot_explains(signed_in: Page, vm: str) -> None:
    page = signed_in
    page.goto(f"/vms/{vm}")
    expect(page.locator("#vm-state")).to_have_text("shut off")
    expect(page.locator("#tab-overview .placeholder").first).to_be_visible()
    expect(page.locator("#tab-overview .placeholder").first).to_have_text("No data while the VM is off.")
    page.click('#tabs [data-tab="console"]')
    expect(page.locator("#screen-off")).to_be_visible()
    for control in ("#console-scale", "#console-keys", "#console-paste-open", "#console-full", "#console-connect"):
        expect(page.locator(control)).to_be_disabled()
    # The screenshot stays clickable: it says why there is no picture (the API's 409), not nothing.
    page.click("#console-shot")
    expect(page.locator("#toast div.bad")).to_contain_text("Screenshot:")
    expect(page.locator("#toast div.bad")).to_contain_text("shut off")
    page.click('#tabs [data-tab="serial"]')
    expect(page.locator("#tab-serial .placeholder")).to_be_visible()


def test_no_page_scrolls_sideways_and_primary_actions_stay_visible(browser: Browser, server: Server,
                                                                    api: httpx.Client, vm: str) -> None:
    primary = {"/": ["#create-link"], "/create": ["#create-submit"], "/host": ["#iso-upload"],
               f"/vms/{vm}": ['#power button[data-action="start"]', '#power button[data-action="delete"]',
                              '#tabs [data-tab="console"]']}
    cookie = api.headers["Cookie"].split("=", 1)[1]
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 800}, base_url=server.url)
        context.add_cookies([{"name": "vmdeck_session", "value": cookie, "url": server.url}])
        page = context.new_page()
        try:
            for path, selectors in primary.items():
                page.goto(path)
                expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
                if path == "/":
                    expect(page.locator(f'tr[data-vm="{vm}"]')).to_be_visible()
                sizes = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
                assert sizes[0] <= sizes[1], f"{path} at {width} px is {sizes[0]} px wide"
                for selector in selectors:
                    box = page.locator(selector).bounding_box()
                    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, \
                        f"{selector} on {path} at {width} px: {box}"
            page.screenshot(path=f"/tmp/webux-vm-{width}.png", full_page=True)
        finally:
            context.close()


def test_settings_change_memory_and_errors_name_the_field_with_the_host_limit(signed_in: Page, api: httpx.Client,
                                                                              vm: str) -> None:
    page = signed_in
    page.goto(f"/vms/{vm}#settings")
    expect(page.locator("#s-memory")).to_have_value("128")
    page.fill("#s-memory", "99999999")
    page.click("#settings-save")
    error = page.locator('#settings-form .field-error[data-for="memory_mib"]')
    expect(error).to_contain_text("Memory (MiB) must be at most")
    expect(error).to_contain_text("on this host")
    page.fill("#s-memory", "160")
    page.click("#settings-save")
    until(lambda: api.get(f"/api/vms/{vm}").json()["memory_mib"] == 160, "memory 160 MiB through the API", 30)
    page.check("#s-autostart")
    until(lambda: api.get(f"/api/vms/{vm}").json()["autostart"] is True, "autostart on", 30)
    page.uncheck("#s-autostart")
    until(lambda: api.get(f"/api/vms/{vm}").json()["autostart"] is False, "autostart off", 30)
    # Boot order: tick CD/DVD, move it above the disk, save.
    page.locator('#boot-list li[data-dev="cdrom"] input').check()
    page.click('#boot-list li[data-dev="cdrom"] button.up')
    expect(page.locator("#boot-list li").first).to_have_attribute("data-dev", "cdrom")
    page.click("#boot-save")
    until(lambda: api.get(f"/api/vms/{vm}").json()["boot_order"] == ["cdrom", "hd"], "boot order cdrom, hd", 30)


def test_start_then_console_scale_modes_change_the_canvas(signed_in: Page, host: Host, vm: str) -> None:
    page = signed_in
    page.goto(f"/vms/{vm}#console")
    page.click('#power button[data-action="start"]')
    expect(page.locator("#vm-state")).to_have_text("running", timeout=30_000)
    expect(page.locator("#screen")).to_have_attribute("data-connected", "true", timeout=30_000)
    expect(page.locator("#screen-off")).to_be_hidden()
    wait_ready(host, vm, timeout=600)  # minutes: the machine is shared and TCG is slow under load
    canvas = page.locator("#screen canvas")

    def size() -> tuple[float, float]:
        box = canvas.bounding_box()
        assert box is not None
        return round(box["width"]), round(box["height"])

    page.select_option("#console-scale", "native")
    native = until(lambda: size()[0] > 0 and size(), "the 1:1 canvas")
    page.select_option("#console-scale", "fit")
    fitted = until(lambda: size() != native and size(), "the scaled canvas")
    assert native != fitted, (native, fitted)
    # 1:1 is the guest's own resolution: the screenshot has the same size.
    page.select_option("#console-scale", "native")
    expect(page.locator("#screen")).to_have_attribute("data-scale", "native")
    assert until(lambda: size() == native, "1:1 again")


def test_paste_as_keys_types_a_command_in_the_guest(signed_in: Page, host: Host, vm: str) -> None:
    page = signed_in
    marker = f"pasted{vm[-6:]}"

    wait_for_screen_shell(host, vm)
    page.click("#console-paste-open")
    page.fill("#console-paste-text", f"mkdir /tmp/{marker}\n")
    page.click("#console-paste-send")
    expect(page.locator("#toast div").last).to_contain_text("typed")

    def listed() -> bool:
        out = guest_exec(host.lookup(vm), ["/bin/sh", "-c", "ls /tmp"], timeout=30).stdout.decode()
        return marker in out
    try:
        until(listed, "the pasted command's directory in the guest", 180)
    finally:
        page.screenshot(path="/tmp/webux-console-1280.png", full_page=True)

    # The send-key menu presses the combination through the API (libvirt's send-key). The tiny guest
    # shows no effect of Ctrl+Alt+Fn (it does not switch terminals), so the notice is what is checked.
    page.select_option("#console-keys", "ctrl-alt-f2")
    expect(page.locator("#toast")).to_contain_text("sent Ctrl+Alt+F2")
    expect(page.locator("#console-keys")).to_have_value("")
    page.screenshot(path="/tmp/webux-console-1280.png", full_page=True)
    page.click('#tabs [data-tab="overview"]')
    expect(page.locator("#ov-cpu")).to_have_attribute("data-samples", re.compile(r"^[3-9]|\d\d"), timeout=30_000)
    page.screenshot(path="/tmp/webux-overview-1280.png", full_page=True)


def test_list_sorts_filters_and_shows_uptime_and_ip(signed_in: Page, host: Host, vm: str) -> None:
    page = signed_in
    # Give the guest an address of its own (a documentation range; no traffic is sent). The user-mode
    # NIC's 10.0.2.15, which every such guest has and nobody can reach, is not listed.
    guest_exec(host.lookup(vm), ["/bin/sh", "-c", "for n in /sys/class/net/*; do i=${n##*/}; [ $i = lo ] || "
                                 "{ ip link set $i up; ip addr add 192.0.2.15/24 dev $i; break; }; done"], timeout=30)
    page.goto("/")
    row = page.locator(f'tr[data-vm="{vm}"]')
    expect(row.locator("td.uptime")).to_have_text(re.compile(r"^\d+ (s|min)$"), timeout=30_000)
    # The agent is asked every 30 s at most.
    expect(row.locator("td.ip")).to_contain_text("192.0.2.15", timeout=90_000)
    expect(row.locator("td.ip")).not_to_contain_text("10.0.2.15")
    page.fill("#vm-filter", vm[-6:])
    expect(page.locator("#vm-rows tr[data-vm]")).to_have_count(1)
    page.fill("#vm-filter", "no-vm-is-called-this")
    expect(page.locator("#vm-rows")).to_contain_text("No VM matches the filter.")
    page.fill("#vm-filter", "")
    page.select_option("#vm-state-filter", "shut off")
    expect(row).to_have_count(0)
    page.select_option("#vm-state-filter", "")
    expect(row).to_be_visible()
    # Other people's VMs come and go on this host: each check reads the rows once.
    names = page.locator("#vm-rows tr[data-vm]")
    ascending = names.evaluate_all("rows => rows.map((r) => r.dataset.vm)")
    assert vm in ascending and ascending == sorted(ascending)
    page.click('th[data-sort="name"]')
    expect(page.locator('th[data-sort="name"]')).to_have_attribute("aria-sort", "descending")
    descending = names.evaluate_all("rows => rows.map((r) => r.dataset.vm)")
    assert vm in descending and descending == sorted(descending, reverse=True)


def test_host_page_charts_cpu_and_memory(signed_in: Page) -> None:
    page = signed_in
    page.goto("/host")
    for chart in ("#host-cpu", "#host-mem"):
        expect(page.locator(chart)).to_have_attribute("data-samples", re.compile(r"^[2-9]|\d\d"), timeout=30_000)
    page.screenshot(path="/tmp/webux-host-1280.png", full_page=True)


def test_a_notice_is_drawn_on_top_of_the_serial_terminal(signed_in: Page, vm: str) -> None:
    page = signed_in
    page.goto(f"/vms/{vm}")
    page.click('#tabs [data-tab="serial"]')
    expect(page.locator("#terminal")).to_have_attribute("data-connected", "true", timeout=30_000)
    page.click('#power button[data-action="pause"]')
    notice = page.locator("#toast div", has_text="paused").last
    expect(notice).to_be_visible()
    box = notice.bounding_box()
    assert box is not None
    topmost = page.evaluate(
        "([x, y]) => { const e = document.elementFromPoint(x, y); return !!e && !!e.closest('#toast'); }",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
    assert topmost, "the notice is covered by something else"
    expect(page.locator("#vm-state")).to_have_text("paused")
    page.click('#power button[data-action="resume"]')
    expect(page.locator("#vm-state")).to_have_text("running", timeout=30_000)


def test_destructive_controls_ask_and_cancel_changes_nothing(signed_in: Page, api: httpx.Client, vm: str,
                                                             library_iso: str) -> None:
    page = signed_in
    page.goto(f"/vms/{vm}")
    expect(page.locator("#vm-state")).to_have_text("running")
    devices_before = api.get(f"/api/vms/{vm}/devices").json()
    for action, words in (("poweroff", "not saved is lost"), ("reset", "not saved is lost"),
                           ("delete", "disk volumes vmdeck created")):
        page.click(f'#power button[data-action="{action}"]')
        expect(page.locator("dialog#confirm")).to_contain_text(words)
        _cancel_dialog(page, vm)
    page.click('#tabs [data-tab="disks"]')
    page.click('#device-table tr[data-key="vda"] button.remove')
    expect(page.locator("#confirm-option")).to_be_checked()  # "keep the volume" is the default
    _cancel_dialog(page, "vda", "Keep the volume")
    page.click('#tabs [data-tab="network"]')
    mac = page.locator("#nic-table tbody tr[data-kind=nic]").first.get_attribute("data-key")
    assert mac
    page.click(f'#nic-table tr[data-key="{mac}"] button.remove')
    _cancel_dialog(page, mac)
    # The list: the row menu and the bulk action.
    page.goto("/")
    row = page.locator(f'tr[data-vm="{vm}"]')
    row.locator(".menu-toggle").click()
    row.locator('button[data-action="poweroff"]').click()
    _cancel_dialog(page, vm)
    expect(page.locator("#bulk")).to_be_hidden()  # nothing ticked: no bulk bar
    row.locator("input.select").check()
    expect(page.locator("#bulk-count")).to_have_text("1 selected")
    page.click('#bulk button[data-bulk="poweroff"]')
    _cancel_dialog(page, vm)
    # The ISO library.
    page.goto("/host")
    page.click(f'#iso-table tr[data-iso="{library_iso}"] button.danger')
    _cancel_dialog(page, library_iso)
    # Nothing changed, as the API sees it.
    assert api.get(f"/api/vms/{vm}").json()["state"] == "running"
    assert api.get(f"/api/vms/{vm}/devices").json() == devices_before
    assert library_iso in [iso["name"] for iso in api.get("/api/isos").json()]


def test_removing_a_disk_can_keep_its_volume(signed_in: Page, api: httpx.Client, vm: str) -> None:
    page = signed_in
    page.goto(f"/vms/{vm}#disks")
    page.fill("#disk-size", "0.1")
    page.click("#disk-add")
    row = page.locator('#device-table tr[data-key="vdb"]')
    expect(row).to_be_visible(timeout=60_000)
    source = next(d["source"] for d in api.get(f"/api/vms/{vm}/devices").json() if d["key"] == "vdb")
    row.locator("button.remove").click()
    expect(page.locator("#confirm-option")).to_be_checked()
    page.click("#confirm-ok")
    expect(row).to_have_count(0, timeout=60_000)
    assert Path(source).exists(), "the kept volume is gone"
    Path(source).unlink()  # ours, made by this test; no longer owned by the VM


def test_power_off_shows_at_once_and_delete_notices_on_the_list(signed_in: Page, api: httpx.Client, vm: str) -> None:
    page = signed_in
    page.goto(f"/vms/{vm}")
    expect(page.locator("#vm-state")).to_have_text("running")
    page.click('#power button[data-action="poweroff"]')
    page.click("#confirm-ok")
    expect(page.locator("#vm-state")).to_have_text("shut off", timeout=60_000)
    expect(page.locator('#power button[data-action="start"]')).to_be_enabled()
    expect(page.locator("#screen-off")).to_be_hidden()  # on another tab; shown on the console tab:
    page.click('#tabs [data-tab="console"]')
    expect(page.locator("#screen-off")).to_be_visible()
    page.click("#activity-toggle")
    expect(page.locator("#activity-list")).to_contain_text(f"Power off {vm}")
    page.click("#activity-toggle")
    page.click('#power button[data-action="delete"]')
    page.click("#confirm-ok")
    expect(page).to_have_url(f"{page.url.split('/vms/')[0]}/")
    expect(page.locator("#toast div")).to_contain_text(f"{vm} deleted")
    assert api.get(f"/api/vms/{vm}").status_code == 404


def test_api_reference_is_a_page_with_local_assets(signed_in: Page, server: Server) -> None:
    page = signed_in
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url)
            if not request.url.startswith(server.url) and not request.url.startswith("data:") else None)
    page.goto("/")
    page.click('header nav a:has-text("API")')
    expect(page).to_have_url(f"{server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("vmdeck", timeout=30_000)
    expect(page.locator(".swagger-ui")).to_contain_text("/api/vms")
    assert not outside, outside

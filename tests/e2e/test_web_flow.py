"""The web UI in headless Chromium against a real `vmdeck serve`, real libvirtd and the tiny guest.

One VM for the whole module, made through the create form and booted once; the steps
run in order and each proves its effect where a user sees it: on the canvas, inside
the guest (read back through the guest agent), or in the list without a reload.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_helpers import PASSWORD, Server, until, wait_for_screen_shell
from playwright.sync_api import Page, expect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from vmdeck.console.screen import decode_png_rgb
from vmdeck.host.connection import Host
from vmdeck.paths import iso_dir
from vmdeck.storage.iso import make_iso
from vmdeck.vm.agent import guest_exec
from vmdeck.vm.lifecycle import wait_ready


def _guest(host: Host, vm: str, command: str) -> str:
    result = guest_exec(host.lookup(vm), ["/bin/sh", "-c", command], timeout=30)
    return result.stdout.decode(errors="replace")



def _lit_pixels(png: bytes) -> tuple[int, bytes]:
    """How many pixels are not (nearly) black, and the raw pixels to compare two shots."""
    width, height, rgb = decode_png_rgb(png)
    lit = sum(1 for i in range(0, len(rgb), 3) if rgb[i] > 60 or rgb[i + 1] > 60 or rgb[i + 2] > 60)
    return lit, rgb


@pytest.fixture(scope="module")
def library_iso(vm_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """An ISO with a file whose content only this run knows, built with vmdeck's own make_iso."""
    folder = tmp_path_factory.mktemp("iso-content")
    secret = f"from-the-web-ui-{vm_name}"
    (folder / "hello.txt").write_text(secret + "\n")
    iso = make_iso(folder, tmp_path_factory.mktemp("iso") / f"{vm_name}.iso")
    yield iso, secret
    (iso_dir() / iso.name).unlink(missing_ok=True)


def test_sign_in(page: Page, server: Server) -> None:
    page.goto("/")
    expect(page).to_have_url(f"{server.url}/login?next=/")
    page.fill("#password", "not-the-password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("wrong user name or password")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(f"{server.url}/")
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")


def test_create_form_shows_errors_next_to_the_field_then_creates(page: Page, server: Server, vm_name: str) -> None:
    page.goto("/create")
    expect(page.locator("#f-template")).to_have_value("tiny")
    page.fill("#f-name", "no spaces allowed")
    page.click("#create-submit")
    expect(page.locator('.field-error[data-for="name"]')).to_contain_text("invalid VM name")
    page.fill("#f-name", vm_name)
    page.fill("#f-vcpus", "999")
    page.click("#create-submit")
    expect(page.locator('.field-error[data-for="vcpus"]')).to_be_visible()
    expect(page.locator('.field-error[data-for="name"]')).to_be_hidden()
    page.fill("#f-vcpus", "1")
    # Limits come from the host and the message uses the form's label.
    page.fill("#f-memory", "9999999")
    page.click("#create-submit")
    # (the server checks the host's facts: patient on a loaded machine)
    expect(page.locator('.field-error[data-for="memory_mib"]')).to_contain_text("Memory (MiB) must be at most",
                                                                               timeout=60_000)
    expect(page.locator('.field-error[data-for="memory_mib"]')).to_contain_text("on this host")
    page.fill("#f-memory", "256")
    page.click("#create-submit")
    expect(page).to_have_url(f"{server.url}/vms/{vm_name}", timeout=120_000)
    expect(page.locator("#vm-state")).to_have_text("shut off")
    # The success notice survives the change of page.
    expect(page.locator("#toast")).to_contain_text(f"{vm_name} created")


def test_start_shows_the_guest_screen(page: Page, host: Host, vm_name: str) -> None:
    page.click('#tabs [data-tab="console"]')
    page.click('#power button[data-action="start"]')
    # The badge changes through the event stream; then the page connects the console by itself.
    expect(page.locator("#vm-state")).to_have_text("running", timeout=30_000)
    expect(page.locator("#screen")).to_have_attribute("data-connected", "true", timeout=30_000)
    wait_ready(host, vm_name, timeout=600)
    canvas = page.locator("#screen canvas")
    lit, before = until(lambda: (shot := _lit_pixels(canvas.screenshot()))[0] > 500 and shot,
                         "the guest's text on the canvas")  # type: ignore[misc]
    assert lit > 500
    # The guest prints on its VGA console: the canvas shows the change.
    _guest(host, vm_name, "for i in 1 2 3 4 5 6; do echo VMDECK-E2E-SCREEN-LINE-$i > /dev/tty1; done")
    until(lambda: _lit_pixels(canvas.screenshot())[1] != before, "the canvas to change")


def test_keys_typed_in_the_browser_run_in_the_guest(page: Page, host: Host, vm_name: str) -> None:
    marker = f"typed{vm_name[-6:]}"
    wait_for_screen_shell(host, vm_name)
    page.locator("#screen canvas").click()
    # Unshifted characters only: a real keyboard sends Shift itself, Playwright's type() does not.
    page.keyboard.type(f"mkdir /tmp/{marker}\n", delay=40)
    until(lambda: marker in _guest(host, vm_name, "ls /tmp"), "the typed command's directory")


def test_serial_terminal_round_trip(page: Page, vm_name: str) -> None:
    page.click('#tabs [data-tab="serial"]')
    expect(page.locator("#terminal")).to_have_attribute("data-connected", "true", timeout=30_000)
    page.locator("#terminal .xterm").click()
    page.keyboard.type("echo serial-$((6*7))-ok\n", delay=20)
    # Only the guest's shell turns $((6*7)) into 42: the text came back from the VM.
    expect(page.locator("#terminal .xterm-rows")).to_contain_text("serial-42-ok", timeout=30_000)


def test_host_view_and_disk_hot_plug(page: Page, host: Host, vm_name: str) -> None:
    # The host view names QEMU's vCPU thread as the host sees it.
    page.click('#tabs [data-tab="hostview"]')
    expect(page.locator("#hv-threads")).to_contain_text("CPU 0/TCG", timeout=30_000)
    page.click('#tabs [data-tab="disks"]')
    page.fill("#disk-size", "0.5")
    page.select_option("#disk-bus", "virtio")
    page.click("#disk-add")
    expect(page.locator('#device-table tr[data-key="vdb"]')).to_be_visible(timeout=60_000)
    until(lambda: "vdb" in _guest(host, vm_name, "ls /sys/block"), "the hot-plugged disk in the guest")


def test_insert_an_iso_from_the_library(page: Page, host: Host, vm_name: str,
                                       library_iso: tuple[Path, str]) -> None:
    iso, secret = library_iso
    page.goto("/host")
    expect(page.locator("#host-facts")).to_contain_text("KVM usable")
    page.set_input_files("#iso-file", str(iso))
    page.click("#iso-upload")
    expect(page.locator("#iso-status")).to_contain_text("uploaded", timeout=60_000)
    expect(page.locator(f'#iso-table tr[data-iso="{iso.name}"]')).to_be_visible()
    page.goto(f"/vms/{vm_name}")
    expect(page.locator("#vm-state")).to_have_text("running")
    page.click('#tabs [data-tab="disks"]')
    page.select_option("#media-iso", iso.name)
    page.click("#media-insert")
    expect(page.locator("#media-table td.disc").first).to_have_text(iso.name, timeout=30_000)
    read = until(lambda: secret in (out := _guest(
        host, vm_name, "mkdir -p /mnt/cd && mount -t iso9660 -o ro /dev/sr0 /mnt/cd && cat /mnt/cd/hello.txt; "
                       "umount /mnt/cd")) and out, "the guest to read the ISO")
    assert secret in str(read)


def test_console_proxy_refuses_what_it_must(server: Server, vm_name: str) -> None:
    api = server.api()
    ws_base = server.url.replace("http://", "ws://")
    own = {"Cookie": api.headers["Cookie"], "Origin": server.url}

    def ticket(kind: str = "vnc") -> str:
        reply = api.post(f"/api/vms/{vm_name}/console/ticket", json={"kind": kind})
        reply.raise_for_status()
        return reply.json()["ticket"]

    def refused(path: str, headers: dict[str, str]) -> int:
        with pytest.raises(InvalidStatus) as error, ws_connect(ws_base + path, additional_headers=headers):
            pass
        return error.value.response.status_code

    path = f"/api/vms/{vm_name}/console/vnc?ticket={ticket()}"
    # Admitted: the bytes are QEMU's own VNC greeting, carried through the proxy.
    with ws_connect(ws_base + path, additional_headers=own, subprotocols=["binary"]) as ws:
        assert ws.recv(timeout=10).startswith(b"RFB 003.008")
    assert refused(path, own) == 403  # used
    assert refused(f"/api/vms/{vm_name}/console/vnc", own) == 403  # none
    assert refused(f"/api/vms/{vm_name}/console/vnc?ticket={ticket()}", {**own, "Origin": "http://evil.example"}) == 403
    assert refused(f"/api/vms/{vm_name}/console/vnc?ticket={ticket('serial')}", own) == 403  # another console
    assert refused(f"/api/vms/{vm_name}/console/vnc?ticket={ticket()}", {"Origin": server.url}) == 403  # no session


def test_api_refuses_without_session_or_csrf(server: Server, vm_name: str) -> None:
    anonymous = httpx.get(f"{server.url}/api/vms", timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    api = server.api()
    del api.headers["X-CSRF-Token"]
    reply = api.post(f"/api/vms/{vm_name}/pause")
    assert reply.status_code == 403 and reply.json()["error"] == "csrf"
    assert api.get(f"/api/vms/{vm_name}").json()["state"] == "running"


def test_power_off_from_the_list_updates_through_the_event_stream(page: Page, vm_name: str) -> None:
    page.goto("/")
    row = page.locator(f'tr[data-vm="{vm_name}"]')
    expect(row.locator(".state")).to_have_text("running")
    # The buttons follow the server's allowed_actions (vmdeck.vm.state), not a copy of the rules in JS.
    expect(row.locator('button[data-action="start"]')).to_be_disabled()
    expect(row.locator('button[data-action="resume"]')).to_be_disabled()
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    page.evaluate("window.__sameDocument = 'still here'")
    row.locator(".menu-toggle").click()
    row.locator('button[data-action="poweroff"]').click()
    page.click("#confirm-ok")  # power off asks first: whatever the guest has not saved is lost
    expect(row.locator(".state")).to_have_text("shut off", timeout=30_000)
    expect(row.locator('button[data-action="start"]')).to_be_enabled()
    expect(row.locator('button[data-action="poweroff"]')).to_be_disabled()
    # No reload happened: the marker set in this document is still there.
    assert page.evaluate("window.__sameDocument") == "still here"


def test_a_console_opened_while_qemu_is_gone_closes_cleanly(server: Server, vm_name: str) -> None:
    """noVNC reconnects on its own, e.g. while a snapshot revert restarts QEMU: a console asked for a VM
    whose QEMU is gone is closed with 1011 and its reason, and the server logs one line, no traceback."""
    api = server.api()
    own = {"Cookie": api.headers["Cookie"], "Origin": server.url}
    assert api.post(f"/api/vms/{vm_name}/start").status_code == 200  # a QEMU process: a ticket is given
    reply = api.post(f"/api/vms/{vm_name}/console/ticket", json={"kind": "vnc"})
    assert reply.status_code == 200, reply.text
    assert api.post(f"/api/vms/{vm_name}/poweroff").status_code == 200  # ... and it is gone again
    logged = len(server.log.read_bytes())
    path = f"{server.url.replace('http://', 'ws://')}/api/vms/{vm_name}/console/vnc?ticket={reply.json()['ticket']}"
    with ws_connect(path, additional_headers=own, subprotocols=["binary"]) as ws, \
            pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=60)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert "shut off" in closed.value.rcvd.reason

    def logged_since() -> str | None:
        text = server.log.read_bytes()[logged:].decode(errors="replace")
        return text if vm_name in text else None

    new = str(until(logged_since, "the server to log the refused console"))
    assert "Traceback" not in new and [line for line in new.splitlines() if vm_name in line] == [
        f"console of {vm_name} not opened: {closed.value.rcvd.reason}"], new

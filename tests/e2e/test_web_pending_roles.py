"""Pending changes, role-aware pages and the delete confirmation, in headless Chromium against a real
`vmdeck serve`, real libvirtd and the tiny guest (issue 20, items 1, 3 and 6).

One VM for the module, in a project with a manager: the administrator saves a 2-vCPU change while it
runs (shown as pending in the header, the form and `vmdeck show`), reboots it from the page and the
guest counts 2 CPUs; the manager's pages show nothing for administrators only; the manager deletes it,
typing its name because it runs. Each step at 1366 px and 420 px.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pycdlib
import pytest
import yaml
from browser_helpers import PASSWORD, PREFIX, Server, pages_by_width, signed_in, tall_table_cells, tiny_vm_of, until
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.images.debian import build_image
from vmdeck.paths import iso_dir
from vmdeck.storage.iso import make_iso
from vmdeck.vm import lifecycle
from vmdeck.vm.agent import guest_exec
from vmdeck.vm.lifecycle import wait_ready

WIDTHS = (1366, 420)
MANAGER_PASSWORD = "e2e-manager-password"
SHOTS = "/tmp/web-r4"


@pytest.fixture(scope="module")
def api(server: Server) -> httpx.Client:
    return server.api()


@pytest.fixture(scope="module")
def manager(api: httpx.Client) -> dict[str, str]:
    tag = uuid.uuid4().hex[:6]
    names = {"project": f"r4pend-{tag}", "user": f"r4mgr-{tag}"}
    api.post("/api/projects", json={"name": names["project"]}).raise_for_status()
    api.post("/api/auth/users", json={"username": names["user"], "password": MANAGER_PASSWORD,
                                      "project": names["project"], "role": "manager"}).raise_for_status()
    return names


@pytest.fixture(scope="module")
def vm(api: httpx.Client, vm_name: str, manager: dict[str, str], host: Host) -> str:
    return tiny_vm_of(api, host, vm_name, manager["project"])


@pytest.fixture(scope="module")
def admin_pages(browser: Browser, server: Server) -> Iterator[dict[int, Page]]:
    with pages_by_width(browser, server, "admin", PASSWORD, WIDTHS) as pages:
        yield pages


@pytest.fixture(scope="module")
def manager_pages(browser: Browser, server: Server, manager: dict[str, str]) -> Iterator[dict[int, Page]]:
    with pages_by_width(browser, server, manager["user"], MANAGER_PASSWORD, WIDTHS) as pages:
        yield pages


def _no_sideways_scroll(page: Page) -> None:
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"{page.url} scrolls sideways at {inner} px ({scroll} px wide)"


def _show(vm: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "vmdeck.cli.main", "show", vm, "--json"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "VMDECK_URI": "qemu:///system"}, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_saved_change_shows_as_pending_and_a_reboot_from_the_page_applies_it(
        admin_pages: dict[int, Page], host: Host, vm: str) -> None:
    os.makedirs(SHOTS, exist_ok=True)
    page = admin_pages[1366]
    page.goto(f"/vms/{vm}#settings")
    expect(page.locator("#vm-state")).to_have_text("running")
    expect(page.locator("#vm-pending")).to_be_hidden()
    page.fill("#s-vcpus", "2")
    page.fill("#s-memory", "256")
    page.click("#settings-save")
    pending = page.locator("#vm-pending")
    expect(pending).to_contain_text("2 vCPU (now 1)")
    expect(pending).to_contain_text("256 MiB of memory (now 128 MiB)")
    # Across a reload: the form edits the next boot's values, the running ones are named beneath.
    for width, shown in admin_pages.items():
        shown.goto(f"/vms/{vm}#settings")
        expect(shown.locator("#s-vcpus")).to_have_value("2")
        expect(shown.locator("#s-memory")).to_have_value("256")
        expect(shown.locator('.live-value[data-for="vcpus"]')).to_contain_text("running now with 1 vCPU")
        expect(shown.locator("#vm-summary")).to_contain_text("1 vCPU (2 vCPU at next boot)")
        _no_sideways_scroll(shown)
        shown.screenshot(path=f"{SHOTS}/pending-admin-{width}.png", full_page=True)
    assert _show(vm)["pending"] == {"vcpus": 2, "memory_mib": 256}
    text = subprocess.run([sys.executable, "-m", "vmdeck.cli.main", "show", vm], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "VMDECK_URI": "qemu:///system"}, check=True).stdout
    assert "pending" in text and "2 vCPU" in text, text
    # The guest still has one CPU; the page's Reboot is a power cycle that gives it two.
    assert guest_exec(host.lookup(vm), ["nproc"], timeout=60).stdout.decode().strip() == "1"
    page.click('#power button[data-action="reboot"]')
    expect(page.locator("#toast")).to_contain_text("started again with 2 vCPU, 256 MiB", timeout=240_000)
    wait_ready(host, vm, timeout=300)
    nproc = until(lambda: guest_exec(host.lookup(vm), ["nproc"], timeout=60).stdout.decode().strip(), "nproc")
    assert nproc == "2"
    expect(page.locator("#vm-pending")).to_be_hidden()
    expect(page.locator("#vm-summary")).to_contain_text("2 vCPU · 256 MiB")
    assert _show(vm)["pending"] == {}


def test_a_managers_pages_show_nothing_for_administrators(manager_pages: dict[int, Page], vm: str) -> None:
    for width, page in manager_pages.items():
        page.goto(f"/vms/{vm}")
        expect(page.locator("#vm-state")).to_have_text("running")
        expect(page.locator('#tabs [data-tab="settings"]')).to_be_visible()  # a manager changes settings
        page.wait_for_timeout(1500)  # a late notice (a refused admin-only request) would show by now
        text = page.locator("body").inner_text()
        for admin_only in ("needs admin", "Host and migration", "host.manage", "Migrate"):
            assert admin_only not in text, f"{admin_only!r} on the manager's VM page at {width} px"
        expect(page.locator("#migrate-card")).to_have_count(0)
        expect(page.locator('header nav a[href="/host"]')).to_have_count(0)
        _no_sideways_scroll(page)
        page.screenshot(path=f"{SHOTS}/vm-manager-{width}.png", full_page=True)
        for path, words in (("/host", "The Host page"), ("/hosts", "The Hosts page")):
            reply = page.goto(path)
            assert reply is not None and reply.status == 403
            expect(page.locator("#forbidden h1")).to_have_text("Not available to your account")
            expect(page.locator("#error-detail")).to_contain_text(words)
            assert "needs admin" not in page.locator("body").inner_text()
            expect(page.locator("#stream-status")).to_be_visible()  # the site's own page, with its frame
            _no_sideways_scroll(page)
        page.screenshot(path=f"{SHOTS}/forbidden-manager-{width}.png", full_page=True)


def test_a_viewer_sees_the_vm_and_none_of_the_controls(browser: Browser, server: Server, api: httpx.Client,
                                                       manager: dict[str, str], vm: str) -> None:
    viewer = f"r4view-{uuid.uuid4().hex[:6]}"
    api.post("/api/auth/users", json={"username": viewer, "password": MANAGER_PASSWORD,
                                      "project": manager["project"], "role": "viewer"}).raise_for_status()
    errors: list[str] = []
    context, page = signed_in(browser, server, 420, viewer, MANAGER_PASSWORD, errors)
    row = page.locator(f'#vm-rows tr[data-vm="{vm}"]')
    expect(row).to_be_visible()
    expect(row.locator(".menu-toggle")).to_have_count(0)
    expect(page.locator("#create-link")).to_have_count(0)
    expect(page.locator('header nav a[href="/audit"]')).to_have_count(0)
    page.goto(f"/vms/{vm}")
    expect(page.locator("#vm-state")).to_have_text("running")
    expect(page.locator("#overview-facts")).to_be_visible()
    for hidden in ("#power", '#tabs [data-tab="console"]', '#tabs [data-tab="settings"]'):
        expect(page.locator(hidden)).to_be_hidden()
    page.click('#tabs [data-tab="disks"]')
    expect(page.locator("#device-table button.remove")).to_have_count(1)
    expect(page.locator("#device-table button.remove")).to_be_hidden()
    expect(page.locator("#disk-add")).to_be_hidden()
    page.screenshot(path=f"{SHOTS}/vm-viewer-420.png", full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the viewer's pages: {errors}"


def _check_tables(page: Page, where: str) -> None:
    expect(page.locator("td:visible").first).to_be_visible()
    page.wait_for_timeout(500)  # rows filled by the page's requests
    tall = tall_table_cells(page)
    assert not tall, f"table cells taller than two lines on {where}: {tall}"
    _no_sideways_scroll(page)


@pytest.mark.parametrize("role", ["admin", "manager"])
def test_no_table_cell_is_taller_than_two_lines(role: str, admin_pages: dict[int, Page],
                                               manager_pages: dict[int, Page], vm: str) -> None:
    pages = admin_pages if role == "admin" else manager_pages
    paths = ["/", "/audit", "/networks"] + (["/host", "/hosts"] if role == "admin" else [])
    for width, page in pages.items():
        for path in paths:
            page.goto(path)
            expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
            _check_tables(page, f"{path} at {width} px as {role}")
            page.screenshot(path=f"{SHOTS}/table-{role}{path.replace('/', '-')}-{width}.png", full_page=True)
        page.goto(f"/vms/{vm}")
        expect(page.locator("#vm-state")).to_have_text("running")
        for tab in ("disks", "network", "hostview"):
            page.click(f'#tabs [data-tab="{tab}"]')
            _check_tables(page, f"the VM's {tab} tab at {width} px as {role}")
        page.screenshot(path=f"{SHOTS}/table-{role}-vm-hostview-{width}.png", full_page=True)


def test_administrators_manage_projects_users_and_memberships_on_pages(
        admin_pages: dict[int, Page], api: httpx.Client, manager: dict[str, str]) -> None:
    page = admin_pages[1366]
    project = f"r4p2-{uuid.uuid4().hex[:6]}"
    page.goto("/projects")
    # Every field's error under its field, all at once.
    page.fill("#p-vcpus", "-1")
    page.fill("#p-memory", "1.5")
    page.click("#p-save")
    for field, words in (("name", "Name the project"), ("vcpus", "0 or more"), ("memory_mib", "whole number")):
        expect(page.locator(f'#project-form .field-error[data-for="{field}"]')).to_contain_text(words)
    page.fill("#p-name", project)
    page.fill("#p-vcpus", "4")
    page.fill("#p-memory", "1024")
    page.click("#p-save")
    row = page.locator(f'#project-table tr[data-project="{project}"]')
    expect(row.locator("td.quota-vcpus")).to_have_text("0 / 4")
    expect(row.locator("td.quota-instances")).to_have_text("0 / no limit")
    row.locator("button.edit").click()
    page.fill("#p-instances", "3")
    page.click("#p-save")
    expect(row.locator("td.quota-instances")).to_have_text("0 / 3")
    assert api.get(f"/api/projects/{project}").json()["quota"]["instances"]["limit"] == 3
    # A user made on the Users page, with a role; a membership given, then taken away.
    user = f"r4u2-{uuid.uuid4().hex[:6]}"
    page.goto("/users")
    page.fill("#u-name", user)
    page.fill("#u-password", "short")
    page.click("#u-create")
    expect(page.locator('#user-form .field-error[data-for="password"]')).to_contain_text("8 characters")
    page.fill("#u-password", "a-long-enough-password")
    page.select_option("#u-project", project)
    page.select_option("#u-role", "operator")
    page.click("#u-create")
    expect(page.locator(f'#user-table tr[data-user="{user}"]')).to_contain_text(f"{project}: operator")
    page.select_option("#m-user", manager["user"])
    page.select_option("#m-project", project)
    page.select_option("#m-role", "viewer")
    page.click("#m-save")
    member = page.locator(f'#user-table tr[data-user="{manager["user"]}"] .membership[data-project="{project}"]')
    expect(member).to_contain_text("viewer")
    member.locator("button.remove").click()
    page.click("#confirm-ok")
    expect(member).to_have_count(0)
    users = {u["username"]: u for u in api.get("/api/users").json()}
    assert users[user]["projects"] == {project: "operator"}
    assert project not in users[manager["user"]]["projects"]
    for width, shown in admin_pages.items():
        for path in ("/projects", "/users", "/account"):
            shown.goto(path)
            expect(shown.locator("td:visible").first).to_be_visible()
            _check_tables(shown, f"{path} at {width} px")
            shown.screenshot(path=f"{SHOTS}/admin{path.replace('/', '-')}-{width}.png", full_page=True)


def test_a_manager_changes_the_password_and_makes_and_revokes_a_token(
        manager_pages: dict[int, Page], server: Server, manager: dict[str, str], vm: str) -> None:
    page = manager_pages[420]
    page.goto("/vms/" + vm)
    page.click("#account-link")
    expect(page).to_have_url(f"{server.url}/account")
    page.fill("#pw-new", "short")
    page.fill("#pw-repeat", "other")
    page.click("#pw-save")
    for field, words in (("old_password", "current password"), ("new_password", "8 characters"),
                         ("repeat", "differ")):
        expect(page.locator(f'#password-form .field-error[data-for="{field}"]')).to_contain_text(words)
    page.fill("#pw-old", "not-my-password")
    page.fill("#pw-new", "a-new-manager-password")
    page.fill("#pw-repeat", "a-new-manager-password")
    page.click("#pw-save")
    expect(page.locator('#password-form .field-error[data-for="old_password"]')).to_contain_text("wrong")
    page.fill("#pw-old", MANAGER_PASSWORD)
    page.fill("#pw-new", "a-new-manager-password")
    page.fill("#pw-repeat", "a-new-manager-password")
    page.click("#pw-save")
    expect(page.locator("#toast")).to_contain_text("Password changed")
    # The other sign-in (the 1366 px window) ended; this one stays.
    other = manager_pages[1366]
    # Its page may already be on its way to /login (its next request was refused): either way it lands there.
    with contextlib.suppress(PlaywrightError):
        other.goto("/account")
    expect(other).to_have_url(re.compile(r"/login"))
    assert httpx.post(f"{server.url}/api/auth/login", json={"username": manager["user"],
                                                            "password": "a-new-manager-password"}).status_code == 200
    # A token: shown once, works for scripts in its project, refused once revoked.
    page.fill("#tok-name", "r4-script")
    page.select_option("#tok-role", "viewer")
    page.click("#tok-create")
    expect(page.locator("#token-secret")).to_be_visible()
    secret = page.locator("#token-value").inner_text()
    row = page.locator('#token-table tr[data-token="r4-script"]')
    expect(row.locator("td.status")).to_have_text("active")
    expect(row).to_contain_text(manager["project"])
    assert secret not in page.locator("#token-table").inner_text()
    bearer = {"Authorization": f"Bearer {secret}"}
    listed = httpx.get(f"{server.url}/api/vms", headers=bearer)
    assert listed.status_code == 200 and vm in [v["name"] for v in listed.json()]
    _no_sideways_scroll(page)
    page.screenshot(path=f"{SHOTS}/account-manager-420.png", full_page=True)
    row.locator("button.revoke").click()
    page.click("#confirm-ok")
    expect(row.locator("td.status")).to_have_text("revoked")
    assert httpx.get(f"{server.url}/api/vms", headers=bearer).status_code == 401


@pytest.fixture(scope="module")
def library_iso(vm_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("r4-iso")
    (folder / "hello.txt").write_text("hello\n")
    iso = make_iso(folder, iso_dir() / f"{vm_name}-r4.iso")
    yield iso.name
    iso.unlink(missing_ok=True)


def _cli(server: Server, *args: str) -> None:
    # The command shares the server's database, as on a host: the VM's project and its quotas live there.
    env = {**os.environ, "VMDECK_URI": "qemu:///system", "VMDECK_DB": str(server.log.parent / "web.sqlite")}
    done = subprocess.run([sys.executable, "-m", "vmdeck.cli.main", *args], capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == 0, f"vmdeck {' '.join(args)}: {done.stdout}{done.stderr}"


def test_the_open_page_follows_changes_made_from_the_cli(admin_pages: dict[int, Page], vm: str,
                                                          library_iso: str, server: Server) -> None:
    page = admin_pages[1366]
    page.goto(f"/vms/{vm}#disks")
    expect(page.locator("#vm-state")).to_have_text("running")
    expect(page.locator("#media-table td.disc").first).to_have_text("(empty)")
    _cli(server, "cdrom", "insert", vm, str(iso_dir() / library_iso))
    expect(page.locator("#media-table td.disc").first).to_have_text(library_iso, timeout=30_000)
    _cli(server, "disk", "add", vm, "--size", "0.1")
    added = page.locator('#device-table tr[data-key="vdb"]')
    expect(added).to_be_visible(timeout=30_000)
    _cli(server, "disk", "remove", vm, "vdb", "--delete-volume")
    expect(added).to_have_count(0, timeout=30_000)
    page.screenshot(path=f"{SHOTS}/live-disks-1366.png", full_page=True)


@pytest.fixture(scope="module")
def debian_vm(host: Host) -> Iterator[str]:
    name = f"{PREFIX}deb-{uuid.uuid4().hex[:6]}"
    yield name
    with contextlib.suppress(NotFound):
        lifecycle.delete(host, name, force=True)


def _user_data(seed: str) -> dict[str, object]:
    iso = pycdlib.PyCdlib()
    iso.open(seed)
    try:
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path="/user-data")
        return yaml.safe_load(out.getvalue().decode())  # type: ignore[no-any-return]
    finally:
        iso.close()


def test_the_create_form_shows_the_templates_image_and_the_overview_how_to_get_in(
        admin_pages: dict[int, Page], api: httpx.Client, server: Server, debian_vm: str) -> None:
    build_image("debian-12")  # scripts/setup-host.sh built it: instant unless missing
    page = admin_pages[1366]
    page.goto("/create")
    expect(page.locator("#f-template")).to_have_value("tiny")
    expect(page.locator("#cloud-init")).to_be_hidden()
    # Every error the form can tell at once, each under its field.
    page.fill("#f-vcpus", "0")
    page.fill("#f-memory", "100.5")
    page.click("#create-submit")
    for field, words in (("name", "Name the VM"), ("vcpus", "At least 1"), ("memory_mib", "whole number")):
        expect(page.locator(f'#create-form .field-error[data-for="{field}"]')).to_contain_text(words)
    page.fill("#f-vcpus", "")
    page.fill("#f-memory", "")
    # A template that clones an image: the image is preselected and cloud-init's fields show.
    page.select_option("#f-template", "debian-12")
    expect(page.locator("#f-image")).to_have_value("debian-12")
    expect(page.locator("#cloud-init")).to_be_visible()
    page.fill("#f-name", debian_vm)
    page.fill("#f-user", "dora")
    page.fill("#f-password", "a-console-password")
    _no_sideways_scroll(page)
    page.screenshot(path=f"{SHOTS}/create-debian-1366.png", full_page=True)
    page.click("#create-submit")
    expect(page).to_have_url(f"{server.url}/vms/{debian_vm}", timeout=120_000)
    vm = api.get(f"/api/vms/{debian_vm}").json()
    (forward,) = vm["port_forwards"]
    seed = next(d["source"] for d in vm["disks"] if d["device"] == "disk" and d["readonly"])
    (user,) = _user_data(seed)["users"]  # type: ignore[misc]
    assert user["name"] == "dora" and user["lock_passwd"] is False and user["passwd"].startswith("$6$")
    # The Access panel: the login user, the forward as a command to copy, the user-mode NIC.
    for width, shown in admin_pages.items():
        shown.goto(f"/vms/{debian_vm}")
        expect(shown.locator('#access-facts dd[data-fact="Login user"]')).to_have_text("dora")
        expect(shown.locator("#ssh-command")).to_have_text(f"ssh -p {forward['host_port']} dora@127.0.0.1")
        expect(shown.locator("#ssh-copy")).to_be_visible()
        expect(shown.locator("#overview-facts")).to_contain_text("user-mode networking, with the SSH forward")
        _no_sideways_scroll(shown)
        shown.screenshot(path=f"{SHOTS}/access-{width}.png", full_page=True)


def test_deleting_a_running_vm_asks_for_its_name(manager_pages: dict[int, Page], admin_pages: dict[int, Page],
                                                api: httpx.Client, vm: str) -> None:
    page = manager_pages[420]
    watcher = admin_pages[1366]  # another user's window on the same VM
    # Shut off: one plain confirmation.
    api.post(f"/api/vms/{vm}/poweroff").raise_for_status()
    page.goto(f"/vms/{vm}")
    expect(page.locator("#vm-state")).to_have_text("shut off")
    page.click('#power button[data-action="delete"]')
    expect(page.locator("#confirm-message")).not_to_contain_text("is running")
    expect(page.locator("#confirm-typed")).to_have_count(0)
    expect(page.locator("#confirm-ok")).to_be_enabled()
    page.click("#confirm-cancel")
    # Running: it says so, and Delete stays disabled until the name is typed.
    api.post(f"/api/vms/{vm}/start").raise_for_status()
    expect(page.locator("#vm-state")).to_have_text("running", timeout=60_000)
    watcher.goto(f"/vms/{vm}")
    expect(watcher.locator("#vm-state")).to_have_text("running")
    page.click('#power button[data-action="delete"]')
    expect(page.locator("#confirm-message")).to_contain_text(f"{vm} is running")
    expect(page.locator("#confirm-ok")).to_be_disabled()
    page.fill("#confirm-typed", vm[:-1])
    expect(page.locator("#confirm-ok")).to_be_disabled()
    page.screenshot(path=f"{SHOTS}/delete-running-420.png")
    page.fill("#confirm-typed", vm)
    expect(page.locator("#confirm-ok")).to_be_enabled()
    page.click("#confirm-ok")
    expect(page).to_have_url(f"{page.url.split('/vms/')[0]}/")
    assert api.get(f"/api/vms/{vm}").status_code == 404
    # The other window learns it from the event stream: it says so, and nothing can act on the VM.
    expect(watcher.locator("#vm-deleted")).to_be_visible(timeout=30_000)
    expect(watcher.locator("#vm-state")).to_have_text("deleted")
    for action in ("start", "shutdown", "reboot", "poweroff", "delete"):
        expect(watcher.locator(f'#power button[data-action="{action}"]')).to_be_disabled()
    watcher.click('#tabs [data-tab="settings"]')
    expect(watcher.locator("#settings-save")).to_be_disabled()
    watcher.screenshot(path=f"{SHOTS}/deleted-elsewhere-1366.png", full_page=True)


def test_the_audit_page_reads_in_words_with_filters_and_pages(admin_pages: dict[int, Page], api: httpx.Client,
                                                              manager: dict[str, str], vm: str) -> None:
    # Enough entries for a second page: tokens made and revoked (each a state change, audited).
    for index in range(30):
        made = api.post("/api/auth/tokens", json={"name": f"r4-page-{index}", "expires_in_days": 1}).json()
        api.delete(f"/api/auth/tokens/{made['id']}").raise_for_status()
    page = admin_pages[1366]
    page.goto("/audit")
    rows = page.locator("#audit-rows tr")
    expect(rows.first.locator("td.what")).to_have_text("revoked an API token")
    expect(page.locator("#a-older")).to_be_enabled()
    page.click("#a-older")
    expect(page.locator("#a-page")).to_have_text("page 2")
    expect(page.locator("#a-newer")).to_be_enabled()
    # One VM's history, in words; the console opens of the pages above are one line per run.
    page.fill("#a-vm", vm)
    page.click("#a-apply")
    expect(page.locator("#a-page")).to_have_text("page 1")
    whats = page.locator("#audit-rows td.what")
    expect(whats.last).to_have_text("created the VM")
    texts = whats.all_inner_texts()
    for words in ("rebooted it", "changed its settings", "powered it off", "started it", "deleted the VM"):
        assert words in texts, f"{words!r} not in {texts}"
    assert any(re.fullmatch(r"opened the console \d+ times", text) for text in texts), texts
    assert all(cell == vm for cell in page.locator("#audit-rows tr td:nth-child(4)").all_inner_texts())
    _check_tables(page, "/audit filtered by VM")
    page.screenshot(path=f"{SHOTS}/audit-vm-1366.png", full_page=True)
    # By user and action; a time range with nothing in it.
    page.fill("#a-vm", "")
    page.fill("#a-user", manager["user"])
    page.select_option("#a-action", "vm.delete")
    page.click("#a-apply")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(manager["user"])
    expect(rows.first.locator("td.what")).to_have_text("deleted the VM")
    page.fill("#a-user", "admin")
    page.select_option("#a-action", "vm.power")
    page.click("#a-apply")
    expect(rows.first).to_contain_text("admin")
    assert set(page.locator("#audit-rows td.what").all_inner_texts()) <= {
        "started it", "shut it down", "powered it off", "rebooted it", "reset it", "paused it", "resumed it"}
    page.fill("#a-user", "")
    page.select_option("#a-action", "")
    page.fill("#a-since", "2000-01-01T00:00")
    page.fill("#a-until", "2000-01-02T00:00")
    page.click("#a-apply")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Nothing recorded")
    admin_pages[420].goto("/audit")
    _check_tables(admin_pages[420], "/audit at 420 px")
    admin_pages[420].screenshot(path=f"{SHOTS}/audit-420.png", full_page=True)

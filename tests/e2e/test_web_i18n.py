"""Every page of the web UI in Korean and in English, in headless Chromium against a real `vmdeck serve`:
an administrator and a project's manager walk all the pages (the VM page with each tab, a confirmation
dialog, field errors, the 403 and 404 pages, the sign-in page) at 1366 px and at 420 px, and every word
shown is a message of the page's language (catalog_check); nothing scrolls sideways. The VM page shows
the running QEMU's command line, one option per line, as /proc has it — with the host's folders cut for
a tenant. Screenshots of the Korean walk go to VMDECK_SHOTS (or a temporary folder), to look at.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser_helpers import PASSWORD, PREFIX, Server
from catalog_check import words_not_in_catalog
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from vmdeck.api import i18n
from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.hostview.process import cmdline_options, qemu_cmdline, read_libvirt_record
from vmdeck.vm import lifecycle

MEMBER_PASSWORD = "e2e-i18n-member-password"
SHOTS = Path(os.environ.get("VMDECK_SHOTS", tempfile.gettempdir())) / "vmdeck-i18n-shots"
WIDTHS = (1366, 420)
TABS = ("overview", "console", "serial", "disks", "network", "snapshots", "backups", "settings", "hostview")
# A host path: an absolute path of two or more folders (what a tenant must not see of the host).
HOST_PATH = re.compile(r"(?<![\w.:/])/[\w.+-]+/[\w.+/-]+")


@pytest.fixture(scope="module")
def world(server: Server, host: Host) -> Iterator[dict[str, str]]:
    """A project with a manager, and a running tiny VM in it (the VM page's every tab has something)."""
    tag = uuid.uuid4().hex[:6]
    names = {"project": f"i18n-{tag}", "member": f"i18nmember{tag}", "vm": f"{PREFIX}i18n-{tag}"}
    admin = server.api()
    admin.post("/api/projects", json={"name": names["project"]}).raise_for_status()
    admin.post("/api/auth/users", json={"username": names["member"], "password": MEMBER_PASSWORD,
                                        "project": names["project"], "role": "manager"}).raise_for_status()
    made = admin.post("/api/vms", json={"name": names["vm"], "template": "tiny", "project": names["project"],
                                        "start": True})
    assert made.status_code == 201, made.text
    yield names
    with contextlib.suppress(NotFound):
        lifecycle.delete(host, names["vm"], force=True)


def _signed_in(browser: Browser, server: Server, lang: str, username: str, password: str) -> Page:
    accept = "ko-KR,ko;q=0.9,en;q=0.5" if lang == "ko" else "en-US,en"
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900}, base_url=server.url,
                                  extra_http_headers={"Accept-Language": accept})
    page = context.new_page()
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    return page


class Walk:
    """Checks pages at both widths, gathering what is wrong rather than stopping at the first page."""

    def __init__(self, page: Page, lang: str, who: str) -> None:
        self.page = page
        self.lang = lang
        self.who = who
        self.problems: dict[str, list[str]] = {}
        self.checked = 0

    def report(self) -> str:
        return "\n".join(f"{where}: {problem}" for where, found in self.problems.items() for problem in found)

    def check(self, where: str, width: int) -> None:
        page = self.page
        # The page's own data has come (each visit waits for it); a quiet network is waited for a while more,
        # but a page that polls (the host view every 2 s) on a loaded machine may never be quiet for long.
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_load_state("networkidle", timeout=5_000)
        key = f"{where} at {width} px"
        found = [f"word not in the {self.lang} catalog: {text!r}" for text in words_not_in_catalog(page, self.lang)]
        if page.locator("html").get_attribute("lang") != self.lang:
            found.append(f"html lang is {page.locator('html').get_attribute('lang')!r}")
        wide = page.evaluate("document.documentElement.scrollWidth")
        if wide > width + 1:
            found.append(f"the page is {wide} px wide: it scrolls sideways")
        if found:
            self.problems[key] = found
        self.checked += 1
        if self.lang == "ko":
            SHOTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", f"{self.who}-{where}-{width}").strip("_")
            # A dialog is seen over the window, not over the whole length of the page behind it.
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page="dialog" not in where)

    def visit(self, path: str, ready: Callable[[Page], None] | None = None,
              then: Callable[[Page, int], None] | None = None) -> None:
        """Open `path`, wait for its data (`ready`), check it at each width; `then` checks more at a width."""
        self.page.set_viewport_size({"width": WIDTHS[0], "height": 900})
        self.page.goto(path)
        if ready:
            ready(self.page)
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            self.check(path, width)
            if then:
                then(self.page, width)


def _rows(selector: str) -> Callable[[Page], None]:
    return lambda page: expect(page.locator(f"{selector} tr").first).to_be_visible()


def _vm_page(walk: Walk, vm: str, admin: bool) -> str:
    """Every tab of the VM page at each width, its delete dialog; returns the command line shown."""
    page = walk.page
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    page.goto(f"/vms/{vm}")
    expect(page.locator("#vm-state")).to_have_attribute("data-state", "running", timeout=120_000)
    expect(page.locator("#device-table tbody tr").first).to_be_attached()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for tab in TABS:
            page.click(f'#tabs [data-tab="{tab}"]')
            if tab == "hostview":
                expect(page.locator("#hv-cmdline-box")).to_be_visible(timeout=60_000)
                expect(page.locator("#hv-threads tbody tr").first).to_be_visible()
            if tab == "snapshots":
                expect(page.locator("#snap-tree li").first).to_be_visible()
            if tab == "backups":
                expect(page.locator("#backup-list tbody tr").first).to_be_visible()
            walk.check(f"/vms/NAME#{tab}{' (admin)' if admin else ''}", width)
        # A confirmation dialog the page composes (deleting a running VM asks for its name).
        page.click('#power [data-action="delete"]')
        expect(page.locator("#confirm")).to_be_visible()
        walk.check("/vms/NAME delete dialog", width)
        page.click("#confirm-cancel")
        expect(page.locator("#confirm")).to_have_count(0)
    page.click('#tabs [data-tab="hostview"]')
    return page.locator("#hv-cmdline").inner_text()


def _common_pages(walk: Walk, world: dict[str, str]) -> None:
    """The pages both roles open, with the field errors two forms compose."""
    def task_panel(page: Page, width: int) -> None:
        page.click("#tasks-toggle")
        expect(page.locator("#activity-list li").first).to_be_visible()
        walk.check("/ with the task panel open", width)
        page.click("#tasks-toggle")
    walk.visit("/", ready=lambda page: expect(page.locator(f'#vm-rows tr[data-vm="{world["vm"]}"]')).to_be_visible(),
               then=task_panel)
    walk.visit("/networks", ready=_rows("#network-table tbody"))

    def empty_create(page: Page, width: int) -> None:
        page.click("#create-submit")
        expect(page.locator('.field-error[data-for="name"]')).to_be_visible()
        walk.check("/create with field errors", width)
    walk.visit("/create", ready=lambda page: expect(page.locator("#template-info")).not_to_be_empty(), then=empty_create)
    walk.visit("/import", ready=lambda page: expect(page.locator("#f-project option").first).to_be_attached())
    walk.visit("/audit", ready=_rows("#audit-rows"))

    def empty_password(page: Page, width: int) -> None:
        page.click("#pw-save")
        expect(page.locator('.field-error[data-for="old_password"]')).to_be_visible()
        walk.check("/account with field errors", width)
    walk.visit("/account", ready=_rows("#token-table tbody"), then=empty_password)
    walk.visit("/learn", ready=lambda page: expect(page.locator(".learn-step").first).to_be_visible())
    walk.visit("/docs", ready=lambda page: expect(page.locator("#swagger-ui .info")).to_be_visible())
    walk.visit("/no-such-page", ready=lambda page: expect(page.locator("#not-found")).to_be_visible())
    walk.visit(f"/vms/{PREFIX}no-such-vm", ready=lambda page: expect(page.locator("#not-found")).to_be_visible())


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_an_administrator_sees_every_page_in_the_language(browser: Browser, server: Server, host: Host,
                                                          world: dict[str, str], lang: str) -> None:
    page = _signed_in(browser, server, lang, "admin", PASSWORD)
    walk = Walk(page, lang, "admin")
    _common_pages(walk, world)
    walk.visit("/host", ready=lambda p: expect(p.locator("#host-facts dd").first).to_be_visible())
    walk.visit("/hosts", ready=lambda p: expect(p.locator("#host-rows tr[data-host]").first).to_be_visible())
    project, member = world["project"], world["member"]
    walk.visit("/projects", ready=lambda p: expect(p.locator(f'#project-table tr[data-project="{project}"]')).to_be_visible())
    walk.visit("/users", ready=lambda p: expect(p.locator(f'#user-table tr[data-user="{member}"]')).to_be_visible())
    shown = _vm_page(walk, world["vm"], admin=True)
    assert not walk.problems, walk.report()
    assert walk.checked > 40
    # QEMU's command line as the host's /proc has it, one option per line, folders and all.
    record = read_libvirt_record(world["vm"])
    assert record is not None and record.pid
    assert shown.splitlines() == cmdline_options(qemu_cmdline(record.pid))
    assert shown.splitlines()[0].startswith("/") and any(line.startswith("-name ") for line in shown.splitlines())


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_a_project_member_sees_every_page_in_the_language(browser: Browser, server: Server, host: Host,
                                                          world: dict[str, str], lang: str) -> None:
    page = _signed_in(browser, server, lang, world["member"], MEMBER_PASSWORD)
    walk = Walk(page, lang, "member")
    _common_pages(walk, world)
    # Administrators' pages: the 403 page says why, in the language.
    walk.visit("/host", ready=lambda p: expect(p.locator("#forbidden")).to_be_visible())
    walk.visit("/users", ready=lambda p: expect(p.locator("#forbidden")).to_be_visible())
    shown = _vm_page(walk, world["vm"], admin=False)
    assert not walk.problems, walk.report()
    # A tenant's command line: every option, but no folder of the host.
    record = read_libvirt_record(world["vm"])
    assert record is not None and record.pid
    assert len(shown.splitlines()) == len(cmdline_options(qemu_cmdline(record.pid)))
    assert any(line.startswith("-name ") for line in shown.splitlines())
    assert HOST_PATH.findall(shown) == [], HOST_PATH.findall(shown)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_the_sign_in_page_and_its_error_are_in_the_language(browser: Browser, server: Server, lang: str) -> None:
    context = browser.new_context(viewport={"width": WIDTHS[1], "height": 900}, base_url=server.url,
                                  extra_http_headers={"Accept-Language": lang})
    page = context.new_page()
    page.goto("/login")
    expect(page.locator("#login-submit")).to_have_text(i18n.catalog(lang)["login.submit"])
    walk = Walk(page, lang, "signed-out")
    walk.check("/login", WIDTHS[1])
    page.fill("#password", "not the password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_be_visible()
    walk.check("/login refused", WIDTHS[1])
    # The check is not blind: a word the catalog lacks is found, the same text as a value is not.
    page.evaluate("""() => {
        const form = document.getElementById('login-form');
        const value = document.createElement('span');
        value.className = 'val';
        value.textContent = 'a name, not a word';
        form.append(document.createTextNode('Words nobody translated'), value);
    }""")
    assert words_not_in_catalog(page, lang) == ["Words nobody translated"]
    page.reload()
    # The 404 page of someone signed out is in the language too.
    page.goto("/no-such-page")
    expect(page.locator("h1")).to_have_text(i18n.catalog(lang)["error.not_found"])
    walk.check("/no-such-page signed out", WIDTHS[1])
    assert not walk.problems, walk.report()
    context.close()


def test_the_language_switch_holds_on_every_page_across_signing_out(browser: Browser, server: Server) -> None:
    page = _signed_in(browser, server, "en", "admin", PASSWORD)
    english, korean = i18n.catalog("en"), i18n.catalog("ko")
    expect(page.locator("h1")).to_have_text(english["list.title"])
    page.select_option("#lang-switch", "ko")
    expect(page.locator("h1")).to_have_text(korean["list.title"])
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login"))
    # Signed out, the browser still asks for English: the choice wins, on the sign-in page too.
    expect(page.locator("#login-submit")).to_have_text(korean["login.submit"])
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#stream-status")).to_have_text(korean["stream.live"])
    for path, key in (("/account", "account.title"), ("/audit", "audit.title"), ("/hosts", "hosts.title"),
                      ("/create", "create.title")):
        page.goto(path)
        expect(page.locator("h1")).to_have_text(korean[key])
        expect(page.locator("html")).to_have_attribute("lang", "ko")
    page.select_option("#lang-switch", "en")
    expect(page.locator("h1")).to_have_text(english["create.title"])
    page.context.close()

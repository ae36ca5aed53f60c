"""The Learn tour in headless Chromium, in Korean and in English, on a real tiny guest: every step run
from the page produces the change it predicts (the host's own /proc and libvirt confirm the VM is left
as it was found), every word on the page is in the language's catalog, the language switch outlives
signing out and in, and a viewer reads the tour but cannot run the steps that act.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_helpers import PASSWORD, PREFIX, Server, until
from catalog_check import words_not_in_catalog
from playwright.sync_api import Browser, Page, expect

from vmdeck.api import i18n
from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.vm import lifecycle
from vmdeck.vm.agent import guest_exec

VIEWER_PASSWORD = "e2e-learn-viewer-password"
# Screenshots of each step, to look at after a run (a temporary folder unless VMDECK_SHOTS names one).
SHOTS = Path(os.environ.get("VMDECK_SHOTS", tempfile.gettempdir())) / "vmdeck-learn-shots"
ACTING = ("vcpu", "sched", "memory", "storage", "cdrom", "hotplug")


def _catalog(lang: str) -> dict[str, str]:
    return i18n.catalog(lang)


@pytest.fixture(scope="module")
def learner_vm(server: Server, host: Host) -> Iterator[str]:
    """A running tiny VM with 2 vCPUs (the scheduling step needs two), made through the API."""
    name = f"{PREFIX}learn-{uuid.uuid4().hex[:6]}"
    made = server.api().post("/api/vms", json={"name": name, "template": "tiny", "vcpus": 2, "start": True})
    assert made.status_code == 201, made.text
    until(lambda: guest_exec(host.lookup(name), ["/bin/true"], timeout=10).exit_code == 0,
          f"the guest agent of {name}", timeout=300)
    yield name
    with contextlib.suppress(NotFound):
        lifecycle.delete(host, name, force=True)


def _page(browser: Browser, server: Server, *, lang: str, width: int) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=server.url,
                                  extra_http_headers={"Accept-Language": "ko-KR,ko;q=0.9" if lang == "ko" else "en-US"})
    page = context.new_page()
    page.goto("/login")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    return page


def _vm_as_found(host: Host, name: str) -> dict[str, object]:
    dom = host.lookup(name)
    return {"pins": [tuple(p) for p in dom.raw.vcpuPinInfo(0)], "xml_disks": dom.xml().count("<disk "),
            "media": "vmdeck-learn.iso" in dom.xml(), "memory": dom.raw.info()[2],
            "busy": guest_exec(dom, ["/bin/sh", "-c", "ls /run/vmdeck-learn-busy 2>/dev/null; true"]).stdout}


def test_every_step_shows_its_change_in_korean(browser: Browser, server: Server, host: Host, learner_vm: str) -> None:
    found = _vm_as_found(host, learner_vm)
    ko = _catalog("ko")
    page = _page(browser, server, lang="ko", width=1366)
    page.goto(f"/learn?vm={learner_vm}")
    expect(page.locator("h1")).to_have_text(ko["learn.title"])
    expect(page.locator(".learn-step")).to_have_count(8)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for step in ("process", "cpumode", *ACTING):
        card = page.locator(f"#step-{step}")
        card.locator("button.run").click()
        expect(card).to_have_attribute("data-state", "done", timeout=240_000)
        card.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"ko-{step}.png"), full_page=False)
        assert card.get_attribute("data-done") == "yes", f"{step}: {card.inner_text()}"
        assert ko[f"step.{step}.title"] in card.inner_text()
    process = page.locator("#step-process")
    pid = int(process.locator("dd").first.inner_text())
    assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/usr/bin/qemu-system-x86_64\0")
    assert "-name" in process.locator("pre.cmdline").inner_text()
    assert _vm_as_found(host, learner_vm) == found


@pytest.mark.parametrize(("lang", "width"), [("ko", 420), ("en", 1366), ("en", 420), ("ko", 1366)])
def test_every_word_is_in_the_catalog(browser: Browser, server: Server, learner_vm: str, lang: str, width: int) -> None:
    catalog = _catalog(lang)
    page = _page(browser, server, lang=lang, width=width)
    page.goto(f"/learn?vm={learner_vm}")
    expect(page.locator(".learn-step")).to_have_count(8)
    card = page.locator("#step-cpumode")
    card.locator("button.run").click()
    expect(card).to_have_attribute("data-state", "done", timeout=120_000)
    page.screenshot(path=str(SHOTS / f"{lang}-{width}.png"), full_page=True)
    assert catalog["learn.title"] in page.locator("h1").inner_text()
    # Every word on the whole page (the top bar too) is a message of the page's language (catalog_check).
    assert words_not_in_catalog(page, lang) == []
    # Nothing wider than the phone's screen: the page never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1


def test_the_language_choice_outlives_signing_out(browser: Browser, server: Server) -> None:
    page = _page(browser, server, lang="en", width=1366)
    page.goto("/learn")
    expect(page.locator("h1")).to_have_text(_catalog("en")["learn.title"])
    page.select_option("#lang-switch", "ko")
    expect(page.locator("h1")).to_have_text(_catalog("ko")["learn.title"])
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    page.goto("/learn")
    expect(page.locator("h1")).to_have_text(_catalog("ko")["learn.title"])
    expect(page.locator("html")).to_have_attribute("lang", "ko")


def test_a_viewer_reads_the_tour_but_cannot_act(browser: Browser, server: Server, learner_vm: str) -> None:
    username = f"learnviewer{uuid.uuid4().hex[:6]}"
    admin = server.api()
    made = admin.post("/api/auth/users", json={"username": username, "password": VIEWER_PASSWORD,
                                               "project": "default", "role": "viewer"})
    assert made.status_code == 201, made.text
    context = browser.new_context(viewport={"width": 420, "height": 900}, base_url=server.url,
                                  extra_http_headers={"Accept-Language": "en"})
    page = context.new_page()
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", VIEWER_PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(f"{server.url}/")
    page.goto(f"/learn?vm={learner_vm}")
    expect(page.locator(".learn-step")).to_have_count(8)
    for step in ACTING:
        card = page.locator(f"#step-{step}")
        expect(card.locator("button.run")).to_have_count(0)
        expect(card.locator(".needs")).to_be_visible()
    page.locator("#step-process button.run").click()
    expect(page.locator("#step-process")).to_have_attribute("data-state", "done", timeout=120_000)
    page.screenshot(path=str(SHOTS / "viewer-420.png"), full_page=True)
    client = httpx.Client(base_url=server.url, timeout=60)
    reply = client.post("/api/auth/login", json={"username": username, "password": VIEWER_PASSWORD})
    client.headers["Cookie"] = f"vmdeck_session={reply.cookies['vmdeck_session']}"
    client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
    refused = client.post(f"/api/vms/{learner_vm}/learn/hotplug")
    assert refused.status_code == 403
    assert "manager" in refused.json()["detail"]
    # A tenant sees QEMU's command line with the host's folders left out.
    shown = client.post(f"/api/vms/{learner_vm}/learn/process").json()["before"]["cmdline"]
    assert not any("/var/lib/" in arg for arg in shown)

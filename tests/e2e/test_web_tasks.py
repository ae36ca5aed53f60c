"""The task panel at the bottom of every page, in headless Chromium against a real `vmdeck serve` and real
libvirtd (issue 20, the task list).

At 1366 px and 420 px: the administrator creates a VM from the Create page, and the panel shows its task
running, then done with its duration; after a reload it is still listed, and a click shows its log. A
create refused by the project's quota shows its error in the panel. A viewer of the VM's project sees the
task; a member of another project (reading Korean) sees none of it. An ISO upload shows its progress bar (420 px).
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from browser_helpers import PASSWORD, PREFIX, Server, signed_in
from playwright.sync_api import Browser, Page, expect

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.vm import lifecycle

WIDTHS = (1366, 420)
MEMBER_PASSWORD = "e2e-member-password"
SHOTS = Path("/tmp/web-tasks")

# Every state the task row of one VM's create has had on the Create page (a MutationObserver: a create of
# a few seconds is "running" for a moment only), kept in sessionStorage for the next page to read.
_WATCH_JS = """(target) => {
  sessionStorage.removeItem('taskStates');
  const look = () => {
    for (const row of document.querySelectorAll('#activity-list .task[data-kind="vm.create"]')) {
      if (row.querySelector('.task-target')?.textContent !== target) continue;
      const states = JSON.parse(sessionStorage.getItem('taskStates') || '[]');
      if (states[states.length - 1] !== row.dataset.state) states.push(row.dataset.state);
      sessionStorage.setItem('taskStates', JSON.stringify(states));  // the Create page leaves when done
    }
  };
  new MutationObserver(look).observe(document.getElementById('activity-list'), { childList: true, subtree: true });
}"""


@pytest.fixture(scope="module")
def api(server: Server) -> httpx.Client:
    return server.api()


@pytest.fixture(scope="module")
def world(api: httpx.Client) -> dict[str, str]:
    tag = uuid.uuid4().hex[:6]
    names = {"project": f"tasks-{tag}", "other": f"tasks-other-{tag}", "tight": f"tasks-tight-{tag}",
             "viewer": f"tview-{tag}", "stranger": f"tother-{tag}"}
    api.post("/api/projects", json={"name": names["project"]}).raise_for_status()
    api.post("/api/projects", json={"name": names["other"]}).raise_for_status()
    api.post("/api/projects", json={"name": names["tight"], "quota": {"vcpus": 1}}).raise_for_status()
    for user, project in ((names["viewer"], names["project"]), (names["stranger"], names["other"])):
        api.post("/api/auth/users", json={"username": user, "password": MEMBER_PASSWORD, "project": project,
                                          "role": "viewer"}).raise_for_status()
    return names


@pytest.fixture(scope="module")
def made(host: Host) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(NotFound):
            lifecycle.delete(host, name, force=True)


def _open_panel(page: Page) -> None:
    if page.locator("#tasks-toggle").get_attribute("aria-expanded") != "true":
        page.click("#tasks-toggle")
    expect(page.locator("#tasks-body")).to_be_visible()


def _row(page: Page, target: str, kind: str = "vm.create") -> object:
    return page.locator(f'#activity-list .task[data-kind="{kind}"]').filter(
        has=page.locator(".task-target", has_text=target))


@pytest.mark.parametrize("width", WIDTHS)
def test_a_create_from_the_page_is_a_task_seen_by_its_project_only(browser: Browser, server: Server,
                                                                     world: dict[str, str], made: list[str],
                                                                     width: int) -> None:
    SHOTS.mkdir(exist_ok=True)
    errors: list[str] = []
    name = f"{PREFIX}t{uuid.uuid4().hex[:5]}"
    made.append(name)
    context, page = signed_in(browser, server, width, "admin", PASSWORD, errors)
    try:
        page.goto("/create")
        expect(page.locator(f'#f-project option[value="{world["project"]}"]')).to_be_attached()
        _open_panel(page)
        page.evaluate(_WATCH_JS, name)
        page.fill("#f-name", name)
        page.select_option("#f-project", world["project"])
        page.select_option("#f-template", "tiny")
        page.fill("#f-memory", "128")
        page.click("#create-submit")
        page.wait_for_url(f"**/vms/{name}", timeout=180_000)  # the create answered: its page opens
        # The task's row was "running" on the Create page while the VM was made.
        assert page.evaluate("JSON.parse(sessionStorage.getItem('taskStates') || '[]')")[:1] == ["running"]
        # On the VM's page the panel reads the server: the task is there, done, with its duration.
        _open_panel(page)
        row = _row(page, name)
        expect(row).to_have_attribute("data-state", "done")
        expect(row.locator(".task-took")).to_have_text(re.compile(r"^(\d+ s|\d+ min \d+ s|under 1 s)$"))
        expect(row.locator(".task-result")).to_have_text(f"created {name}")
        expect(row).to_contain_text("by admin")
        page.screenshot(path=str(SHOTS / f"done-{width}.png"), full_page=False)

        page.reload()
        _open_panel(page)
        row = _row(page, name)
        expect(row).to_have_attribute("data-state", "done")  # kept across page loads: read from the server
        row.click()
        expect(page.locator("#task-detail")).to_be_visible()
        expect(page.locator("#task-detail-title")).to_contain_text(name)
        expect(page.locator("#task-log")).to_contain_text("accelerator")
        page.screenshot(path=str(SHOTS / f"log-{width}.png"), full_page=False)

        # A create the project's quota refuses: the form says so, and so does the panel, as a failed task.
        refused = f"{PREFIX}q{uuid.uuid4().hex[:5]}"
        page.goto("/create")
        expect(page.locator(f'#f-project option[value="{world["tight"]}"]')).to_be_attached()
        page.fill("#f-name", refused)
        page.select_option("#f-project", world["tight"])
        page.select_option("#f-template", "tiny")
        page.fill("#f-vcpus", "2")
        page.click("#create-submit")
        _open_panel(page)
        failed = _row(page, refused)
        expect(failed).to_have_attribute("data-state", "failed")
        expect(failed.locator(".task-result")).to_contain_text("vcpus limit 1")
        page.screenshot(path=str(SHOTS / f"failed-{width}.png"), full_page=False)
    finally:
        context.close()

    # The project's viewer sees the create; a member of another project sees neither task.
    context, page = signed_in(browser, server, width, world["viewer"], MEMBER_PASSWORD, errors)
    try:
        _open_panel(page)
        expect(_row(page, name)).to_have_attribute("data-state", "done")
        expect(page.locator("#activity-list")).not_to_contain_text(refused)
    finally:
        context.close()
    context, page = signed_in(browser, server, width, world["stranger"], MEMBER_PASSWORD, errors, lang="ko")
    try:
        _open_panel(page)
        expect(page.locator("#tasks-title")).to_have_text("작업")  # the panel's words, in Korean here
        expect(page.locator("#activity-list")).to_have_text("아직 작업이 없습니다.")
        page.screenshot(path=str(SHOTS / f"stranger-{width}.png"), full_page=False)
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"


def test_an_upload_shows_its_progress_bar(browser: Browser, server: Server, api: httpx.Client) -> None:
    width = 420  # the narrow page: the bar beside the kind, user and duration (both widths: the test above)
    SHOTS.mkdir(exist_ok=True)
    errors: list[str] = []
    name = f"{PREFIX}up{uuid.uuid4().hex[:5]}.iso"
    chunk = 512 * 1024
    payload = (bytes(32769) + b"CD001").ljust(12 * chunk, b"\0")  # an ISO 9660 volume descriptor at sector 16

    def slowly() -> Iterator[bytes]:  # a slow client: the upload runs for seconds
        for start in range(0, len(payload), chunk):
            time.sleep(0.4)
            yield payload[start:start + chunk]

    context, page = signed_in(browser, server, width, "admin", PASSWORD, errors)
    try:
        _open_panel(page)
        with ThreadPoolExecutor(1) as pool:
            upload = pool.submit(api.put, f"/api/isos/{name}", content=slowly(),
                                 headers={"content-type": "application/octet-stream",
                                          "content-length": str(len(payload))})
            row = _row(page, name, kind="iso.upload")
            expect(row).to_have_attribute("data-state", "running")
            # Part of it received: the bar shows the bytes received of the declared size, as a percentage.
            expect(row.locator("progress")).to_have_attribute("value", re.compile(r"^[1-9]\d?$"))
            page.screenshot(path=str(SHOTS / f"upload-{width}.png"), full_page=False)
            assert upload.result().status_code == 201, upload.result().text
        expect(row).to_have_attribute("data-state", "done")
        expect(row.locator(".task-bar")).to_contain_text("100%")
    finally:
        context.close()
        api.delete(f"/api/isos/{name}")
    assert not errors, f"JavaScript errors on the pages: {errors}"

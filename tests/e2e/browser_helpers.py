"""Helpers shared by the browser tests (a module of its own: every test folder has a `conftest`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, expect

from vmdeck.host.connection import Host
from vmdeck.vm.agent import guest_exec
from vmdeck.vm.lifecycle import wait_ready

PASSWORD = "e2e-admin-password"
# The pid, as in tests/integration/conftest.py: the leftovers of a run that died are recognised (its pid
# is gone) and removed by the integration tests' session cleanup.
PREFIX = f"vmdeck-test-{os.getpid()}-e2e-"


class Server:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def api(self) -> httpx.Client:
        """A signed-in API client (session cookie + CSRF token), as the browser is."""
        client = httpx.Client(base_url=self.url, timeout=120)
        reply = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        reply.raise_for_status()
        # The cookie is Secure (browsers keep it on loopback http); httpx would not send it back over
        # http, so the client carries it explicitly, as the browser does.
        client.headers["Cookie"] = f"vmdeck_session={reply.cookies['vmdeck_session']}"
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        return client


def wait_for_screen_shell(host: Host, vm: str, timeout: float = 300) -> None:
    """Wait until a shell reads the guest's screen (tty1). "Ready" means the agent answers; the shell on
    the screen may start a moment later, and keys typed before it are lost."""
    script = 'for p in /proc/[0-9]*; do [ "$(readlink $p/fd/0)" = /dev/tty1 ] && cat $p/comm; done'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if "sh" in guest_exec(host.lookup(vm), ["/bin/sh", "-c", script], timeout=30).stdout.decode().split():
                time.sleep(1)  # its prompt
                return
        time.sleep(0.5)
    raise AssertionError(f"no shell on the screen of {vm} within {timeout:g} s")


def until(check: Callable[[], object], what: str, timeout: float = 60) -> object:
    """The first truthy value of `check()` (exceptions count as "not yet"), polled every 0.5 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def sign_in_as_admin(page: Page) -> Page:
    """Sign in on /login as the server's admin and wait until the page's event stream is live."""
    page.goto("/login")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    return page


def signed_in(browser: Browser, server: Server, width: int, username: str, password: str, errors: list[str],
              lang: str | None = None) -> tuple[BrowserContext, Page]:
    """A browser context of `width` signed in as `username` (its page's script errors go to `errors`), its
    event stream live; `lang` sets the language cookie first."""
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=server.url)
    if lang is not None:
        context.add_cookies([{"name": "vmdeck_lang", "value": lang, "url": server.url}])
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    return context, page


@contextlib.contextmanager
def pages_by_width(browser: Browser, server: Server, username: str, password: str,
                   widths: tuple[int, ...]) -> Iterator[dict[int, Page]]:
    """One signed-in page per width for a module's tests; closed after, failing on any script error."""
    errors: list[str] = []
    opened = {width: signed_in(browser, server, width, username, password, errors) for width in widths}
    yield {width: page for width, (_c, page) in opened.items()}
    for context, _page in opened.values():
        context.close()
    assert not errors, f"JavaScript errors on {username}'s pages: {errors}"


def tiny_vm_of(api: httpx.Client, host: Host, name: str, project: str) -> str:
    """A running tiny VM of `project`, made through the API, its guest ready."""
    reply = api.post("/api/vms", json={"name": name, "template": "tiny", "memory_mib": 128, "project": project})
    assert reply.status_code == 201, reply.text
    api.post(f"/api/vms/{name}/start").raise_for_status()
    wait_ready(host, name, timeout=300)
    return name


# Every visible table cell whose text box is taller than two lines of its own text (a word split
# letter by letter, a squeezed column): [(text, lines)]. Buttons and bars count as about one line.
_TALL_CELLS_JS = """() => [...document.querySelectorAll('td, th')].filter((cell) => cell.offsetParent !== null).map((cell) => {
  const style = getComputedStyle(cell);
  const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.25;
  // The content's own height (a cell is as tall as its row's tallest cell), and no more than the cell
  // shows (text clamped to two lines keeps its hidden lines in the range's box).
  const range = document.createRange();
  range.selectNodeContents(cell);
  const shown = cell.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
  return [cell.innerText.slice(0, 60), Math.min(range.getBoundingClientRect().height, shown) / line];
}).filter(([, lines]) => lines > 2.6)"""


def tall_table_cells(page: Page) -> list[tuple[str, float]]:
    return [(text, round(lines, 1)) for text, lines in page.evaluate(_TALL_CELLS_JS)]

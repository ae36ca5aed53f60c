"""Fixtures for browser tests: a real `vmdeck serve` on a free loopback port, real libvirtd,
and Debian's Chromium driven by Playwright (never a browser Playwright downloads).

VMs made here are named `vmdeck-test-<pid>-e2e-*` and deleted at the end of the module.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from browser_helpers import PASSWORD, PREFIX, Server
from playwright.sync_api import Browser, Page, expect, sync_playwright

from serving import free_port, wait_for_serve
from vmdeck.errors import NotFound
from vmdeck.host.connection import Host, connect
from vmdeck.vm import lifecycle

CHROMIUM = "/usr/bin/chromium"
# Quiet on a closed network: no background fetches, no component updates, no QUIC.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The machine is shared and often loaded: a page may take more than Playwright's default 5 s to fill.
# Set here, once, for every browser test (a module's own setting would hold for the modules after it).
expect.set_options(timeout=20_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    log = folder / "serve.log"
    env = {**os.environ, "VMDECK_ADMIN_PASSWORD": PASSWORD, "VMDECK_URI": "qemu:///system"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "vmdeck.cli.main", "serve", "--port", str(port), "--db", str(folder / "web.sqlite")],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for_serve(url, process, log)
    yield Server(url, process, log)
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    with connect("qemu:///system") as opened:
        yield opened


@pytest.fixture(scope="module")
def vm_name(host: Host) -> Iterator[str]:
    """The name the test creates through the form; whatever exists under it is deleted at the end."""
    name = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    yield name
    with contextlib.suppress(NotFound):
        lifecycle.delete(host, name, force=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, base_url=server.url,
                                  accept_downloads=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"

"""The history charts in the browser: a busy loop in a guest shows on its VM page's CPU chart (an SVG
of vmdeck's own), the range buttons switch the window, and the host page charts the host's line.

The server samples every 2 s (VMDECK_METRICS_INTERVAL) so the 1-hour chart has points within a minute.
A screenshot of the VM page's chart is saved as metrics-history.png in the test's folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import PASSWORD, PREFIX, Server, sign_in_as_admin, until
from playwright.sync_api import Page, expect

from serving import free_port, wait_for_serve
from vmdeck.host.connection import Host
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.agent import guest_exec
from vmdeck.vm.create import create_vm


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    log = folder / "serve.log"
    env = {**os.environ, "VMDECK_ADMIN_PASSWORD": PASSWORD, "VMDECK_URI": "qemu:///system",
           "VMDECK_METRICS_INTERVAL": "2"}
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
def busy_vm(host: Host) -> Iterator[str]:
    name = f"{PREFIX}busy-{uuid.uuid4().hex[:6]}"
    create_vm(host, resolve("tiny", name, Overrides(vcpus=1, memory_mib=128)))
    try:
        lifecycle.start(host, name, wait=True, timeout=600)
        done = guest_exec(host.lookup(name), ["/bin/sh", "-c", "nohup sh -c 'while :; do :; done' >/dev/null 2>&1 &"],
                          timeout=60)
        assert done.exit_code == 0
        yield name
    finally:
        lifecycle.delete(host, name, force=True)


def test_a_busy_loop_shows_on_the_vm_pages_cpu_chart(page: Page, server: Server, busy_vm: str,
                                                      tmp_path: Path) -> None:
    sign_in_as_admin(page)
    page.goto(f"/vms/{busy_vm}")
    chart = page.locator("#history-cpu")
    # The chart reloads every 10 s; the busy loop keeps the VM's one vCPU near 100 % of a host CPU
    # (a quarter of that on a machine with a load of 18, never near the idle few percent).
    until(lambda: float(chart.get_attribute("data-max") or 0) > 15 and int(chart.get_attribute("data-points") or 0) >= 4,
          "the busy loop on the CPU chart", timeout=180)
    expect(chart.locator("path.line-0")).to_have_attribute("d", re.compile(r"^M\d"))
    page.locator("#history").screenshot(path=str(tmp_path / "metrics-history.png"))
    print(f"screenshot: {tmp_path / 'metrics-history.png'}")
    page.click("#history [data-range='1d']")
    expect(page.locator("#history [data-range='1d']")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#history-status")).to_contain_text("one per 1 min")
    until(lambda: int(chart.get_attribute("data-points") or 0) >= 1, "the 1-day chart's points", timeout=60)


def test_the_host_page_charts_the_hosts_line(page: Page, server: Server) -> None:
    page.goto("/host")
    until(lambda: int(page.locator("#history-cpu").get_attribute("data-points") or 0) > 0, "host history points",
          timeout=120)
    expect(page.locator("#history-status")).to_contain_text("one per 10 s")

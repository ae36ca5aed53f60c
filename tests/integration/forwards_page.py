"""The VM page's port forwards, in Chromium, run INSIDE the namespace host by test_forwards.py (nsenter):
`vmdeck serve` listens on that namespace's 127.0.0.1, where the session cookie (Secure) is kept on http.

    python forwards_page.py URL VM PASSWORD MARK

Signs in, opens the VM's Network tab, checks the forward the test made is listed, adds 18085 -> 8080
with the form, fetches the guest's page through it, removes it with its button, and reads the panel
in Korean. Exit 0 when all holds; an assertion's message otherwise.
"""

from __future__ import annotations

import socket
import sys
import time

from playwright.sync_api import expect, sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def fetch(port: int) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return b"".join(iter(lambda: conn.recv(4096), b"")).decode(errors="replace")
        except OSError:
            time.sleep(0.5)
    return ""


def main(url: str, vm: str, password: str, mark: str) -> None:
    expect.set_options(timeout=30_000)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/login")
        page.fill("#password", password)
        page.click("#login-submit")
        expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
        page.goto(f"/vms/{vm}")
        page.click("button[role=tab][data-tab=network]")
        panel = page.locator("#forwards")
        expect(panel.locator("h2")).to_have_text("Port forwards")
        expect(panel.locator("tr[data-forward='127.0.0.1:18080/tcp']")).to_be_visible()
        page.fill("#forward-host-port", "18085")
        page.fill("#forward-guest-port", "8080")
        page.click("#forward-add")
        row = panel.locator("tr[data-forward='127.0.0.1:18085/tcp']")
        expect(row).to_be_visible()
        expect(page.locator("#forward-result")).to_contain_text("Forwarded 127.0.0.1:18085/tcp")
        assert mark in fetch(18085), "the forward added on the page does not answer"
        row.locator("button[data-forward-action=remove]").click()
        expect(row).to_have_count(0)
        expect(page.locator("#forward-result")).to_contain_text("Removed the forward 127.0.0.1:18085/tcp")
        # A port forwarded already: the API's one-line refusal, on the panel.
        page.fill("#forward-host-port", "18080")
        page.click("#forward-add")
        expect(page.locator("#forward-result")).to_contain_text("forwarded already")
        context.add_cookies([{"name": "vmdeck_lang", "value": "ko", "url": url}])
        page.reload()
        page.click("button[role=tab][data-tab=network]")
        expect(panel.locator("h2")).to_have_text("포트 포워딩")
        expect(page.locator("#forward-add")).to_have_text("포워딩 추가")
        expect(panel.locator("button[data-forward-action=remove]")).to_have_text("삭제")
        browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


if __name__ == "__main__":
    main(*sys.argv[1:5])

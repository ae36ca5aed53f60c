"""The HTML pages: signed-out visitors go to the sign-in page; pages carry the CSRF token; assets are local."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_pages_redirect_to_sign_in(anon: TestClient) -> None:
    for path in ("/", "/create", "/vms/busy", "/host", "/hosts"):
        reply = anon.get(path, follow_redirects=False)
        assert reply.status_code == 303 and reply.headers["location"] == f"/login?next={path}"
    assert anon.get("/login").status_code == 200


def test_pages_carry_the_csrf_token_and_load_nothing_from_outside(client: TestClient) -> None:
    csrf = client.headers["X-CSRF-Token"]
    for path in ("/", "/create", "/vms/busy", "/host", "/hosts"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert f'name="csrf-token" content="{csrf}"' in page.text
        for url in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert url.startswith("/"), url


def test_static_assets_are_served(client: TestClient) -> None:
    assert client.get("/static/js/vm.js").status_code == 200
    assert client.get("/static/vendor/novnc/core/rfb.js").status_code == 200
    assert client.get("/static/vendor/xterm/xterm.mjs").status_code == 200


def test_unknown_vm_and_unknown_page_are_html_404s(client: TestClient) -> None:
    for path in ("/vms/no-such-vm", "/no/such/page"):
        page = client.get(path)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), path
        assert 'id="not-found"' in page.text
    assert "no-such-vm" in client.get("/vms/no-such-vm").text
    # The API keeps answering JSON.
    assert client.get("/api/vms/no-such-vm").json()["error"] == "not_found"


def test_favicon_and_api_reference_page(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text


def test_pages_have_no_inline_script(client: TestClient) -> None:
    # The pages run under a CSP without 'unsafe-inline': every script is a static file.
    for path in ("/", "/create", "/vms/busy", "/host", "/docs"):
        text = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert not re.search(r"\son[a-z]+=", text), path

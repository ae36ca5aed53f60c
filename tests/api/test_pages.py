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

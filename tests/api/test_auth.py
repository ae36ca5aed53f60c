"""Sign-in, sessions, CSRF, API tokens and the 401 wall, in-process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from webapi_helpers import ADMIN_PASSWORD, AppFactory, sign_in

from vmdeck.api import Settings, create_app
from vmdeck.api.security import SESSION_COOKIE


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/vms"), ("GET", "/api/vms/busy"), ("POST", "/api/vms"), ("DELETE", "/api/vms/busy"),
    ("POST", "/api/vms/busy/start"), ("GET", "/api/templates"), ("GET", "/api/host"), ("GET", "/api/isos"),
    ("GET", "/api/openapi.json"), ("GET", "/api/no-such-endpoint"), ("PUT", "/api/isos/x.iso"),
    ("GET", "/api/auth/me"), ("POST", "/api/auth/tokens"), ("POST", "/api/vms/busy/console/ticket"),
])
def test_anonymous_requests_get_401_and_nothing_else(anon: TestClient, method: str, path: str) -> None:
    # Even a malformed body is not looked at: no 422 tells an anonymous caller what the API expects.
    reply = anon.request(method, path, content=b"{not json", headers={"content-type": "application/json"})
    assert reply.status_code == 401
    assert reply.json() == {"error": "unauthorized", "kind": "unauthorized", "detail": reply.json()["detail"],
                            "field": None}
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_wrong_password_is_401_and_sets_no_cookie(anon: TestClient) -> None:
    reply = anon.post("/api/auth/login", json={"username": "admin", "password": "wrong-password"})
    assert reply.status_code == 401
    assert reply.json()["error"] == "unauthorized"
    assert SESSION_COOKIE not in reply.cookies
    assert anon.post("/api/auth/login", json={"username": "nobody", "password": "x"}).status_code == 401


def test_sign_in_sets_an_httponly_strict_cookie(anon: TestClient) -> None:
    reply = anon.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert reply.status_code == 200
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert reply.json()["csrf_token"]
    me = anon.get("/api/auth/me").json()
    assert me["username"] == "admin" and me["is_admin"] and me["via"] == "session"


def test_cookie_is_secure_on_https_and_loopback(make_app: AppFactory) -> None:
    with TestClient(make_app(allowed_hosts=("vmdeck.example",)), base_url="https://vmdeck.example") as client:
        reply = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert "Secure" in reply.headers["set-cookie"]
    with TestClient(make_app(), base_url="http://127.0.0.1:8470") as client:
        reply = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert "Secure" in reply.headers["set-cookie"]


def test_state_changing_request_needs_the_csrf_token(anon: TestClient) -> None:
    csrf = sign_in(anon)
    missing = anon.post("/api/vms/busy/pause")
    assert missing.status_code == 403 and missing.json()["error"] == "csrf"
    wrong = anon.post("/api/vms/busy/pause", headers={"X-CSRF-Token": "not-the-token"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "csrf"
    assert anon.get("/api/vms/busy").json()["state"] == "running"  # nothing happened
    ok = anon.post("/api/vms/busy/pause", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["state"] == "paused"


def test_foreign_origin_is_refused_even_with_the_token(anon: TestClient) -> None:
    csrf = sign_in(anon)
    reply = anon.post("/api/vms/busy/pause", headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert reply.status_code == 403 and reply.json()["error"] == "forbidden"
    login = anon.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD},
                      headers={"Origin": "http://evil.example"})
    assert login.status_code == 403


def test_api_token_works_without_csrf_and_is_stored_hashed(client: TestClient, tmp_path: Path) -> None:
    created = client.post("/api/auth/tokens", json={"name": "ci"})
    assert created.status_code == 201
    token = created.json()["token"]
    listed = client.get("/api/auth/tokens").json()
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    # Same server (one process, as `vmdeck serve` is): revoking takes effect at once despite its cache.
    with TestClient(client.app) as script:
        bearer = {"Authorization": f"Bearer {token}"}
        assert script.get("/api/vms", headers=bearer).status_code == 200
        assert script.post("/api/vms/busy/pause", headers=bearer).json()["state"] == "paused"
        assert script.get("/api/auth/me", headers=bearer).json()["via"] == "token"
        assert script.get("/api/vms", headers={"Authorization": "Bearer vmd_wrong"}).status_code == 401
        # The database holds a digest, never the token itself.
        db = sqlite3.connect(tmp_path / "web" / "vmdeck.sqlite")
        rows = db.execute("select token_hash from api_tokens").fetchall()
        assert len(rows) == 1 and rows[0][0] != token and len(rows[0][0]) == 64
        raw = (tmp_path / "web" / "vmdeck.sqlite").read_bytes()
        assert token.encode() not in raw
        assert client.delete(f"/api/auth/tokens/{listed[0]['id']}").status_code == 200
        assert script.get("/api/vms", headers=bearer).status_code == 401
    assert client.delete("/api/auth/tokens/999").status_code == 404


def test_sessions_survive_a_restart(make_app: AppFactory) -> None:
    with TestClient(make_app()) as first:
        sign_in(first)
        cookie = first.cookies[SESSION_COOKIE]
    with TestClient(make_app(), cookies={SESSION_COOKIE: cookie}) as second:
        assert second.get("/api/auth/me").json()["username"] == "admin"


def test_logout_ends_the_session(client: TestClient) -> None:
    cookie = client.cookies[SESSION_COOKIE]
    assert client.post("/api/auth/logout").status_code == 200
    client.cookies.set(SESSION_COOKIE, cookie)
    assert client.get("/api/vms").status_code == 401


def test_first_start_generates_a_one_time_password(tmp_path: Path, test_host) -> None:  # type: ignore[no-untyped-def]
    app = create_app(Settings(db_path=tmp_path / "fresh.sqlite", events=False, allowed_hosts=("testserver",)), host=test_host)
    password = app.state.ctx.admin_password
    assert password and len(password) >= 12
    with TestClient(app) as client:
        sign_in(client, password=password)
    again = create_app(Settings(db_path=tmp_path / "fresh.sqlite", events=False, allowed_hosts=("testserver",)), host=test_host)
    assert again.state.ctx.admin_password is None and not again.state.ctx.admin_created


def test_passwords_are_argon2_hashes(tmp_path: Path, client: TestClient) -> None:
    db = sqlite3.connect(tmp_path / "web" / "vmdeck.sqlite")
    (stored,) = db.execute("select password_hash from users where username='admin'").fetchone()
    assert stored.startswith("$argon2id$") and ADMIN_PASSWORD not in stored
    # Alembic owns the schema: the revision table says where it stands.
    # (the newest revision, read from the migrations themselves, so a new migration needs no edit here).
    from importlib import resources

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(resources.files("vmdeck.store") / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert db.execute("select version_num from alembic_version").fetchone() == (head,)


def test_change_password_and_accounts(client: TestClient, make_app: AppFactory) -> None:
    bad = client.post("/api/auth/password", json={"old_password": "nope", "new_password": "long-enough-1"})
    assert bad.status_code == 422 and bad.json()["field"] == "old_password"
    short = client.post("/api/auth/password", json={"old_password": ADMIN_PASSWORD, "new_password": "short"})
    assert short.status_code == 422 and short.json()["field"] == "new_password"
    made = client.post("/api/auth/users", json={"username": "bob", "password": "bobs-password"})
    assert made.status_code == 201
    assert client.post("/api/auth/users", json={"username": "bob", "password": "bobs-password"}).status_code == 409
    with TestClient(make_app()) as bob:
        csrf = sign_in(bob, "bob", "bobs-password")
        refused = bob.post("/api/auth/users", json={"username": "eve", "password": "eves-password"},
                           headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 403

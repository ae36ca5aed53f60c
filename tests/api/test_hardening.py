"""The attacks found on `vmdeck serve`, each refused: DNS rebinding, password guessing, ISO upload abuse,
names with a trailing newline, readable database files, open redirects, sessions that outlive a password
change, missing browser protections, plain HTTP on the network, an unbounded host-view cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

from fastapi.testclient import TestClient
from tenancy_helpers import PASSWORD, make_world
from webapi_helpers import ADMIN_PASSWORD, AppFactory, sign_in

from vmdeck.host.connection import Host

ISO = bytes(32769) + b"CD001" + bytes(8192)  # the smallest thing with an ISO 9660 volume descriptor


# --- DNS rebinding ---------------------------------------------------------------------------------------
def test_unknown_host_names_are_refused(make_app: AppFactory) -> None:
    app = make_app(events=False, allowed_hosts=("localhost", "127.0.0.1", "::1"))
    with TestClient(app, base_url="http://127.0.0.1:8470") as local:
        assert local.get("/login").status_code == 200
        sign_in(local)
        # evil.example resolving to 127.0.0.1: same socket, but the browser sends its own name.
        rebound = local.get("/api/vms", headers={"host": "evil.example:8470"})
        assert rebound.status_code == 400 and "evil.example" in rebound.json()["detail"]
        assert local.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD},
                          headers={"host": "evil.example", "origin": "http://evil.example"}).status_code == 400
    with TestClient(app, base_url="http://localhost:8470") as by_name:
        assert by_name.get("/login").status_code == 200


# --- sign-in throttling ----------------------------------------------------------------------------------
def test_repeated_wrong_passwords_are_slowed_down(anon: TestClient) -> None:
    statuses = [anon.post("/api/auth/login", json={"username": "admin", "password": f"guess{i}"}).status_code
                for i in range(8)]
    assert statuses[:5] == [401] * 5 and 429 in statuses[5:], statuses
    throttled = anon.post("/api/auth/login", json={"username": "admin", "password": "guess"})
    assert throttled.status_code == 429 and throttled.json()["error"] == "too_many_attempts"
    assert 1 <= int(throttled.headers["retry-after"]) <= 30  # short: the real user is not locked out for long


def test_throttle_forgets_after_a_success_and_is_bounded() -> None:
    from vmdeck.api import throttle

    now = [0.0]
    book = throttle.LoginThrottle(clock=lambda: now[0])
    for _ in range(7):
        book.failed("admin", "10.0.0.1")
    assert 1 <= book.retry_after("admin", "10.0.0.2") <= 30  # per user, from any address
    assert book.retry_after("bob", "10.0.0.1") >= 1  # per address, for any user
    now[0] += 31
    assert book.retry_after("admin", "10.0.0.1") == 0  # never longer than MAX_WAIT_S
    book.succeeded("admin", "10.0.0.1")
    assert book.retry_after("admin", "10.0.0.1") == 0
    for i in range(throttle._MAX_KEYS + 50):
        book.failed(f"made-up-{i}", "10.0.0.9")
    assert len(book._failures) <= throttle._MAX_KEYS


# --- ISO uploads -----------------------------------------------------------------------------------------
def test_iso_uploads_are_capped_checked_and_published_atomically(client: TestClient, _data_dir: Path) -> None:
    isos = _data_dir / "isos"
    # A declared 10 TiB body is refused before a byte is read.
    huge = client.put("/api/isos/huge.iso", content=ISO, headers={"content-length": str(10 * 2**40)})
    assert huge.status_code == 413, huge.text
    # A name ending in a newline is not a name.
    assert client.put("/api/isos/trick.iso%0A", content=ISO).status_code == 422
    # Not an ISO 9660 image.
    html = client.put("/api/isos/page.iso", content=b"<html>" + bytes(40000))
    assert html.status_code == 422 and "ISO 9660" in html.json()["detail"]
    # Two uploads of one name at once: one wins whole, the other is told the name is taken.
    bodies = [ISO + b"A" * 100000, ISO + b"B" * 100000]
    replies: list = []  # type: ignore[type-arg]

    def upload(body: bytes) -> None:
        other = TestClient(client.app)
        other.headers["X-CSRF-Token"] = sign_in(other)
        replies.append(other.put("/api/isos/race.iso", content=body))

    threads = [threading.Thread(target=upload, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in replies) == [201, 409], [r.text for r in replies]
    assert (isos / "race.iso").read_bytes() in bodies
    assert sorted(p.name for p in isos.iterdir()) == ["race.iso"]  # no temp file, nothing hidden


def test_iso_uploads_count_against_the_project_quota(client: TestClient, _data_dir: Path) -> None:
    world = make_world(client.app, client, quota={"iso_gib": 0.0001})  # ~107 KB each
    manager = world.client("alpha-manager")
    assert manager.put("/api/isos/small.iso", content=ISO).status_code == 201
    over = manager.put("/api/isos/second.iso", content=ISO + bytes(60000))
    assert over.status_code in (409, 413) and "iso" in over.json()["detail"].lower(), over.text
    shown = manager.get("/api/projects/alpha").json()["quota"]["iso_gib"]
    assert shown["limit"] == 0.0001 and shown["used"] > 0
    assert manager.get("/api/isos").json()[0]["path"] is None  # the host's folders are not the tenant's business
    # Another project neither sees it nor can use it.
    beta = world.client("beta-manager")
    assert [i["name"] for i in beta.get("/api/isos").json()] == []
    assert beta.post("/api/vms/b1/media", json={"iso": "small.iso"}).status_code == 404
    assert beta.delete("/api/isos/small.iso").status_code == 404


def test_names_with_a_trailing_newline_are_refused(client: TestClient) -> None:
    made = client.post("/api/vms", json={"name": "web1\n", "template": "q35-virtio"})
    assert made.status_code == 422 and made.json()["field"] == "name"
    nic = client.post("/api/vms/busy/nics", json={"mac": "52:54:00:12:34:56\n"})
    assert nic.status_code == 422, nic.text


# --- database files --------------------------------------------------------------------------------------
def test_database_files_are_private(client: TestClient, tmp_path: Path) -> None:
    client.post("/api/auth/tokens", json={"name": "write-something"})
    folder = tmp_path / "web"
    assert folder.stat().st_mode & 0o777 == 0o700
    files = sorted(p.name for p in folder.iterdir())
    assert "vmdeck.sqlite-wal" in files  # WAL mode: the side files exist and hold data
    for name in files:  # the metrics history is a folder of its own there: private too
        assert (folder / name).stat().st_mode & 0o777 == (0o700 if (folder / name).is_dir() else 0o600), name


def test_a_database_in_a_shared_folder_leaves_the_folder_alone(tmp_path: Path) -> None:
    from vmdeck.store.db import open_database

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: closing it would lock everyone else (QEMU included) out
    open_database(shared / "vmdeck.sqlite")
    assert shared.stat().st_mode & 0o7777 == 0o1777
    assert (shared / "vmdeck.sqlite").stat().st_mode & 0o777 == 0o600


# --- open redirect ---------------------------------------------------------------------------------------
def test_login_next_accepts_only_paths_of_this_server(anon: TestClient) -> None:
    for evil in ("/\\evil.example", "//evil.example", "https://evil.example/", "\\/evil",
                 "/\t/evil.example", "javascript:alert(1)"):
        page = anon.get("/login", params={"next": evil})
        assert 'data-next="/"' in page.text, (evil, page.text)
    assert 'data-next="/vms/web1"' in anon.get("/login", params={"next": "/vms/web1"}).text


# --- sessions end with a password change -----------------------------------------------------------------
def test_a_password_change_signs_out_the_other_sessions(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    mine = world.client("alpha-viewer")
    stolen = TestClient(client.app)
    sign_in(stolen, "alpha-viewer", PASSWORD)
    assert stolen.get("/api/auth/me").status_code == 200
    # The thief made tokens while signed in: they die with the old password too.
    minted = [stolen.post("/api/auth/tokens", json={"name": f"kept-{i}", "expires_in_days": 1},
                          headers={"X-CSRF-Token": stolen.get("/api/auth/me").json()["csrf_token"]}).json()["token"]
              for i in range(2)]
    script = TestClient(client.app, headers={"Authorization": f"Bearer {minted[0]}"})
    assert script.get("/api/vms").status_code == 200
    changed = mine.post("/api/auth/password", json={"old_password": PASSWORD, "new_password": "another-password"})
    assert changed.status_code == 200 and changed.json()["other_sessions_ended"] == 1
    assert changed.json()["tokens_revoked"] == 2
    assert stolen.get("/api/auth/me").status_code == 401
    assert script.get("/api/vms").status_code == 401
    assert mine.get("/api/auth/me").status_code == 200
    assert all(t["revoked_at"] for t in mine.get("/api/auth/tokens").json())


# --- browser protections ---------------------------------------------------------------------------------
def test_every_page_carries_csp_frame_and_nosniff_headers(client: TestClient) -> None:
    anon = TestClient(client.app)
    for reply in (anon.get("/login"), client.get("/"), client.get("/vms/busy"), client.get("/api/vms"),
                  client.get("/vms/nosuchvm")):
        csp = reply.headers.get("content-security-policy", "")
        script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
        assert script_src.strip() == "script-src 'self'" and "frame-ancestors 'none'" in csp
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in reply.headers  # plain HTTP: it would mean nothing
    # No inline script in any template: everything the CSP would block is in static files.
    templates = Path(__file__).parents[2] / "src" / "vmdeck" / "web" / "templates"
    for template in templates.glob("*.html"):
        for line in template.read_text().splitlines():
            assert "<script" not in line or "src=" in line, (template.name, line)
            assert " on" not in line.split("<script")[0] or "onclick=" not in line, (template.name, line)


def test_a_foreign_vm_page_is_not_found(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    viewer = world.client("alpha-viewer")
    foreign, missing = viewer.get("/vms/b1"), viewer.get("/vms/nosuchvm")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.text.replace("b1", "X") == missing.text.replace("nosuchvm", "X")
    assert viewer.get("/vms/a1").status_code == 200


# --- plain HTTP on the network ---------------------------------------------------------------------------
def test_serve_refuses_a_network_address_without_tls(tmp_path: Path) -> None:
    env = {**os.environ, "VMDECK_DATA_DIR": str(tmp_path)}
    refused = subprocess.run([sys.executable, "-m", "vmdeck.cli.main", "serve", "--host", "0.0.0.0",
                              "--db", str(tmp_path / "db.sqlite")], capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2 and "--tls-cert" in refused.stderr and "--insecure-http" in refused.stderr
    half = subprocess.run([sys.executable, "-m", "vmdeck.cli.main", "serve", "--tls-cert", "x.pem"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert half.returncode == 2 and "go together" in half.stderr


def test_serve_speaks_tls_with_a_certificate(tmp_path: Path) -> None:
    import socket
    import ssl
    import time

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    # A key every user can read is refused with one line (exit 2), before anything listens.
    key.chmod(0o644)
    readable = subprocess.run([sys.executable, "-m", "vmdeck.cli.main", "serve", "--port", "1", "--db",
                               str(tmp_path / "db.sqlite"), "--tls-cert", str(cert), "--tls-key", str(key)],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "VMDECK_DATA_DIR": str(tmp_path)})
    assert readable.returncode == 2 and "readable by every user" in readable.stderr, readable.stderr
    assert len(readable.stderr.strip().splitlines()) == 1, readable.stderr
    key.chmod(0o600)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "VMDECK_DATA_DIR": str(tmp_path), "VMDECK_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "VMDECK_URI": "test:///default"}
    server = subprocess.Popen([sys.executable, "-m", "vmdeck.cli.main", "serve", "--port", str(port), "--db",
                               str(tmp_path / "db.sqlite"), "--tls-cert", str(cert), "--tls-key", str(key)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                        context.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    answer = tls.recv(4096)
                break
            except (ConnectionRefusedError, ssl.SSLError, OSError):
                assert server.poll() is None and time.monotonic() < deadline, "vmdeck serve did not come up"
                time.sleep(0.3)
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"strict-transport-security: max-age=31536000" in answer.lower()  # browsers stay on HTTPS
    finally:
        server.terminate()
        server.wait(20)


# --- host-view cache -------------------------------------------------------------------------------------
def test_the_host_view_cache_is_bounded(test_host: Host, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from vmdeck.api import hostview

    class Cheap:  # a real Collector reads /proc: the bound is what is tested here
        def __init__(self, host: Host, timeout_s: float) -> None:
            self.host = host

    monkeypatch.setattr(hostview, "Collector", Cheap)
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(ctx=SimpleNamespace(extra={}))))
    for i in range(500):
        hostview._collector(request, test_host, f"made-up-{i}")  # type: ignore[arg-type]
    assert len(request.app.state.ctx.extra["hostview"]) <= hostview.MAX_COLLECTORS


def test_parallel_wrong_passwords_get_no_more_401s_than_the_free_attempts(anon: TestClient) -> None:
    # Each attempt is counted before the (slow) Argon2 check: 40 guesses at once are not 40 checks.
    from concurrent.futures import ThreadPoolExecutor

    from vmdeck.api.throttle import FREE_FAILURES

    anon.app.state.ctx.throttle.clock = lambda: 1000.0  # no back-off runs out while the guesses arrive

    def guess(i: int) -> int:
        other = TestClient(anon.app)
        return other.post("/api/auth/login", json={"username": "admin", "password": f"guess-{i}"}).status_code

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(guess, range(40)))
    assert statuses.count(401) <= FREE_FAILURES and statuses.count(429) >= 40 - FREE_FAILURES, statuses

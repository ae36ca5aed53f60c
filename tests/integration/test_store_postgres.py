"""Two real `vmdeck serve` on one PostgreSQL are one control plane (real libvirtd: VMs defined, not started).

Sessions are shared (a sign-in on one server works on the other), a project's quota holds across both
under concurrent creates, and a server killed with SIGKILL in the middle of a create leaves claims
that count until their lease lapses, then stop counting, while the other server goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from itest_support import PREFIX, VMDECK, delete_vm, wait_for

from pg_support import pg_server, pg_url  # noqa: F401 (fixtures)
from serving import free_port, wait_for_serve
from vmdeck.host.connection import Host

PASSWORD = "two-servers-password"
LEASE_S = 20  # long enough to see the dead server's claim count, short enough to wait out


class Server:
    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.log = folder / f"serve-{name}.log"
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([*VMDECK, "serve", "--port", str(self.port)], stdout=log,
                                            stderr=subprocess.STDOUT, env=self.env)
        wait_for_serve(self.url, self.process, self.log)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


@pytest.fixture
def two_servers(tmp_path: Path, pg_url: str) -> Iterator[tuple[Server, Server, dict[str, str]]]:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if k != "VMDECK_URI"}
    # Its own data folder: the local socket of a server on PostgreSQL goes there, not in /var/lib/vmdeck.
    env.update(VMDECK_DB=pg_url, VMDECK_ADMIN_PASSWORD=PASSWORD, VMDECK_DATA_DIR=str(tmp_path / "data"),
               VMDECK_CLAIM_LEASE_S=str(LEASE_S))
    servers: list[Server] = []
    try:
        servers.append(Server("a", tmp_path, env))
        servers.append(Server("b", tmp_path, env))
        yield servers[0], servers[1], env
    finally:
        for server in servers:
            server.stop()


def _signed_in(server: Server) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=120)
    reply = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
    # The cookie is Secure (browsers count loopback as secure; httpx does not send it over http): by hand.
    client.headers["Cookie"] = f"vmdeck_session={reply.cookies['vmdeck_session']}"
    client.cookies.clear()
    return client


def _create(client: httpx.Client, name: str, project: str) -> httpx.Response:
    return client.post("/api/vms", json={"name": name, "template": "q35-virtio", "memory_mib": 64, "vcpus": 1,
                                         "disk_gib": 1, "project": project, "start": False})


def _create_quietly(client: httpx.Client, name: str, project: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server is killed under it
        _create(client, name, project)


def _used(client: httpx.Client, project: str) -> float:
    reply = client.get(f"/api/projects/{project}")
    assert reply.status_code == 200, reply.text
    return float(reply.json()["quota"]["instances"]["used"])


Servers = tuple[Server, Server, dict[str, str]]


def test_two_servers_share_one_control_plane(two_servers: Servers, host: Host, pg_url: str) -> None:  # noqa: F811
    a, b, env = two_servers
    project = f"pg{os.getpid()}"
    made = subprocess.run([*VMDECK, "project", "create", project, "--instances", "3"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert made.returncode == 0, made.stderr
    on_a = _signed_in(a)
    # The session made on a is good on b: one accounts table.
    on_b = httpx.Client(base_url=b.url, timeout=120, headers={
        "Cookie": on_a.headers["Cookie"], "X-CSRF-Token": on_a.headers["X-CSRF-Token"]})
    assert on_b.get("/api/auth/me").status_code == 200
    names = [f"{PREFIX}pg-{i}" for i in range(8)]
    try:
        # Eight creates at once, half on each server, against a quota of three instances.
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda i: _create(on_a if i % 2 else on_b, names[i], project), range(8)))
        codes = sorted(r.status_code for r in replies)
        assert codes == [201] * 3 + [409] * 5, [r.text for r in replies]
        assert all(r.json()["error"] == "quota_exceeded" for r in replies if r.status_code == 409)
        defined = [n for n in names if host.exists(n)]
        assert len(defined) == 3
        assert _used(on_b, project) == 3

        # One more instance allowed; a create on a is caught holding its claims, and a is SIGKILLed.
        quota = subprocess.run([*VMDECK, "project", "quota", project, "--instances", "4"], capture_output=True,
                               text=True, env=env, timeout=120)
        assert quota.returncode == 0, quota.stderr
        orphan = _kill_mid_create(a, project, host, pg_url)
        # On one machine a dead owner is known dead (vmdeck.store.lease.forget_dead_here: its claims stop
        # counting at the next decision); a server on another machine is known only by its lease. Both
        # servers run here, so the orphan's claims are made to look like another machine's.
        with psycopg.connect(pg_url) as conn:
            conn.execute("UPDATE reservations SET owner = 'elsewhere/0/0:1:0' WHERE what = %s", (f"vm:{orphan}",))
            conn.execute("UPDATE placements SET owner = 'elsewhere/0/0:1:0' WHERE vm = %s", (orphan,))
        # b goes on: it answers, and the dead server's claim still counts until its lease lapses ...
        assert _used(on_b, project) == 4
        refused = _create(on_b, f"{PREFIX}pg-late", project)
        assert refused.status_code == 409 and refused.json()["error"] == "quota_exceeded", refused.text
        # ... then no longer: nothing a dead server reserved stays held.
        wait_for(lambda: _used(on_b, project) == 3, timeout=LEASE_S * 6)
        late = _create(on_b, f"{PREFIX}pg-late", project)
        assert late.status_code == 201, late.text
        # Its placement claim on the host lapsed with it: no room shown as held by a create in progress.
        local = next(h for h in on_b.get("/api/hosts").json() if h["name"] == "local")
        assert (local["pending_mib"], local["pending_vcpus"]) == (0, 0)
        with psycopg.connect(pg_url) as conn:  # the dead server's claim: lapsed (it is swept later), never released
            left = conn.execute("SELECT expires_at, released_seq FROM reservations WHERE what = %s",
                                (f"vm:{orphan}",)).fetchall()
        assert all(expires < time.time() and released is None for expires, released in left), left
        assert not host.exists(orphan)
    finally:
        for name in [*names, f"{PREFIX}pg-late", *[f"{PREFIX}pg-orphan-{i}" for i in range(5)]]:
            delete_vm(host, name)


def _kill_mid_create(a: Server, project: str, host: Host, database: str) -> str:
    """Start a create on `a` and SIGKILL it while the create holds its quota reservation, before libvirt has
    the VM (watched in the database); the VM's name. A create that got as far as defining its VM before
    the kill is undone, `a` started again, and the next one caught."""
    for attempt in range(5):
        name = f"{PREFIX}pg-orphan-{attempt}"
        on_a = _signed_in(a)
        with ThreadPoolExecutor(1) as pool, psycopg.connect(database, autocommit=True) as conn:
            pool.submit(_create_quietly, on_a, name, project)
            deadline = time.monotonic() + 120
            row = None
            while row is None and time.monotonic() < deadline:
                row = conn.execute("SELECT released_seq FROM reservations WHERE what = %s", (f"vm:{name}",)).fetchone()
            assert row is not None, "the create on server a never reserved its quota"
            a.process.send_signal(signal.SIGKILL)
            a.process.wait(30)
            held = conn.execute("SELECT released_seq, owner FROM reservations WHERE what = %s",
                                (f"vm:{name}",)).fetchone()
        if held is not None and held[0] is None and not host.exists(name):
            assert held[1].split(":")[1] == str(a.process.pid)  # the dead server's own claim
            return name
        delete_vm(host, name)  # the create won the race: undo it and catch the next one earlier
        a.start()
    raise AssertionError("never caught a create in progress")

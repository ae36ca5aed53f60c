"""The policy table covers every route, and each role gets exactly what the table says:
on its own project's VM the allowed actions work and the others answer 403; on another
project's VM (or a VM outside any project) every action answers 404, word for word as
for a VM that does not exist."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from tenancy_helpers import ROLES, make_world
from webapi_helpers import AppFactory

from pg_support import both_backends  # noqa: F401 (every test on SQLite and on PostgreSQL)
from vmdeck.api.policy import NEEDS, POLICY, ROUTE_ACTIONS
from vmdeck.store.tenancy import role_rank


def _app_routes(app) -> set[str]:  # type: ignore[no-untyped-def]
    keys = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIWebSocketRoute):
            keys.add(f"WS {route.path}")
        elif isinstance(route, APIRoute):
            keys.update(f"{m} {route.path}" for m in route.methods if m != "HEAD")
    return keys


def test_every_route_has_a_policy_entry(make_app: AppFactory) -> None:
    app = make_app(events=False)
    openapi = app.openapi()
    documented = {f"{method.upper()} {path}" for path, ops in openapi["paths"].items() for method in ops}
    routes = _app_routes(app)
    assert documented <= routes
    assert any(key.startswith("WS ") for key in routes) and "GET /vms/{name}" in routes  # websockets and pages too
    missing = sorted(routes - set(ROUTE_ACTIONS))
    assert missing == [], f"routes without an entry in vmdeck.api.policy.POLICY: {missing}"
    stale = sorted(set(ROUTE_ACTIONS) - routes)
    assert stale == [], f"POLICY names routes that do not exist: {stale}"
    assert all(rule.need in NEEDS for rule in POLICY.values())
    # A VM-scoped rule must be on routes that name the VM.
    for action, rule in POLICY.items():
        if rule.scope == "vm":
            assert all("{name}" in r for r in rule.routes), action


def test_a_route_without_an_entry_is_refused(make_app: AppFactory, client: TestClient) -> None:
    # Fail closed: a route added without a policy entry answers 403 even to an administrator.
    app = client.app

    @app.get("/api/unlisted")  # type: ignore[attr-defined]
    def unlisted() -> dict[str, bool]:
        return {"reached": True}

    reply = client.get("/api/unlisted")
    assert reply.status_code == 403 and "no policy entry" in reply.json()["detail"]


# Every action on one VM: (action, method, path, body). {vm} is replaced by the VM's name.
VM_REQUESTS = [
    ("vm.show", "GET", "/api/vms/{vm}", None),
    ("vm.show", "GET", "/api/vms/{vm}/devices", None),
    ("vm.show", "GET", "/api/vms/{vm}/guest", None),
    ("vm.screenshot", "GET", "/api/vms/{vm}/screenshot", None),
    ("vm.hostview", "GET", "/api/vms/{vm}/hostview", None),
    ("vm.learn", "GET", "/api/vms/{vm}/learn", None),
    ("vm.learn", "POST", "/api/vms/{vm}/learn/cpumode", None),  # a step that only reads: a viewer's
    ("vm.history", "GET", "/api/vms/{vm}/history", None),
    ("vm.power", "POST", "/api/vms/{vm}/start", None),
    ("vm.power", "POST", "/api/vms/{vm}/pause", None),
    ("vm.power", "POST", "/api/vms/{vm}/resume", None),
    ("vm.power", "POST", "/api/vms/{vm}/reboot", None),
    ("vm.power", "POST", "/api/vms/{vm}/reset", None),
    ("vm.power", "POST", "/api/vms/{vm}/shutdown", {"timeout": 1, "force": True}),
    ("vm.power", "POST", "/api/vms/{vm}/poweroff", None),
    ("vm.console", "POST", "/api/vms/{vm}/console/ticket", {"kind": "vnc"}),
    ("vm.console", "POST", "/api/vms/{vm}/console/link", None),
    ("vm.keys", "POST", "/api/vms/{vm}/keys", {"keys": ["enter"]}),
    ("vm.keys", "POST", "/api/vms/{vm}/type", {"text": "ls"}),
    ("vm.media", "POST", "/api/vms/{vm}/media", {"iso": "none.iso"}),
    ("vm.media", "DELETE", "/api/vms/{vm}/media", None),
    ("vm.exec", "POST", "/api/vms/{vm}/exec", {"command": ["true"], "timeout": 1}),
    ("vm.resize", "PATCH", "/api/vms/{vm}", {"vcpus": 1}),
    ("vm.resize", "POST", "/api/vms/{vm}/apply-pending", None),
    ("vm.devices", "POST", "/api/vms/{vm}/disks", {"size_gib": 1}),
    ("vm.devices", "POST", "/api/vms/{vm}/disks/vdz/resize", {"size_gib": 1}),
    ("vm.devices", "DELETE", "/api/vms/{vm}/disks/vdz", None),
    ("vm.devices", "POST", "/api/vms/{vm}/nics", {"network": "user"}),
    ("vm.devices", "DELETE", "/api/vms/{vm}/nics/52:54:00:00:00:99", None),
    ("vm.devices", "POST", "/api/vms/{vm}/cdroms", {}),
    ("vm.storage", "GET", "/api/vms/{vm}/storage", None),
    ("vm.devices", "POST", "/api/vms/{vm}/volumes/novol/reattach", {"bus": "virtio"}),
    ("vm.devices", "DELETE", "/api/vms/{vm}/volumes/novol", None),
    ("vm.show", "GET", "/api/vms/{vm}/snapshots", None),
    ("vm.snapshot", "POST", "/api/vms/{vm}/snapshots", {"name": "s1"}),
    ("vm.snapshot", "POST", "/api/vms/{vm}/snapshots/nosnap/revert", None),
    ("vm.snapshot", "DELETE", "/api/vms/{vm}/snapshots/nosnap", None),
    ("vm.clone", "POST", "/api/vms/{vm}/clone", {"name": "a1-clone"}),
    ("vm.adopt", "POST", "/api/vms/{vm}/adopt", {"project": "alpha"}),
    ("vm.migrate", "POST", "/api/vms/{vm}/migrate", {"to": "nowhere"}),
    ("backup.list", "GET", "/api/vms/{vm}/backups", None),
    ("backup.create", "POST", "/api/vms/{vm}/backups/cancel", None),
    ("backup.manage", "POST", "/api/vms/{vm}/backups/prune", {"keep_last": 1}),
    ("backup.manage", "PUT", "/api/vms/{vm}/backups/schedule", {"every": "6h", "keep_last": 2}),
    ("backup.manage", "DELETE", "/api/vms/{vm}/backups/schedule", None),
    ("backup.create", "POST", "/api/vms/{vm}/backups", {}),
    ("vm.forwards.list", "GET", "/api/vms/{vm}/forwards", None),
    ("vm.forwards", "POST", "/api/vms/{vm}/forwards", {"host_port": 18080}),
    ("vm.forwards", "DELETE", "/api/vms/{vm}/forwards/999", None),
    ("vm.delete", "DELETE", "/api/vms/{vm}", None),  # last: it succeeds for a manager
]


def test_the_table_lists_every_vm_route_once() -> None:
    covered = {f"{m} {p.replace('{vm}', '{name}')}" for _a, m, p, _b in VM_REQUESTS}
    vm_routes = {r for r in ROUTE_ACTIONS if r.split(" ", 1)[1].startswith("/api/vms/{name}") and not r.startswith("WS")}
    assert vm_routes - {r.replace("vdz", "{target}").replace("52:54:00:00:00:99", "{mac}").replace("nosnap", "{snap}")
                        .replace("cpumode", "{step_id}").replace("novol", "{volume}")
                        .replace("forwards/999", "forwards/{forward_id}") for r in covered} == set()


def _call(client: TestClient, method: str, path: str, body: object):  # type: ignore[no-untyped-def]
    return client.request(method, path, json=body) if body is not None else client.request(method, path)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_on_its_own_and_on_foreign_vms(make_app: AppFactory, client: TestClient, role: str) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    me = world.client(f"alpha-{role}")
    for action, method, path, body in VM_REQUESTS:
        need = POLICY[action].need
        # Another project's VM and a VM outside any project: 404, as for a VM that does not exist.
        for foreign in ("b1", "busy"):
            reply = _call(me, method, path.format(vm=foreign), body)
            missing = _call(me, method, path.format(vm="nosuchvm"), body)
            assert reply.status_code == 404, (role, action, foreign, reply.text)
            assert missing.status_code == 404, (role, action, missing.text)
            assert reply.json()["detail"].replace(foreign, "X") == missing.json()["detail"].replace("nosuchvm", "X")
        # Its own project's VM: what the table allows works (whatever the test driver then says), the rest is 403.
        reply = _call(me, method, path.format(vm="a1"), body)
        allowed = need != "admin" and role_rank(role) >= role_rank(need)
        if allowed:
            # Allowed: past the policy (the test driver may then say 404 for a made-up disk, 409, 503 ...).
            assert reply.status_code not in (401, 403), (role, action, reply.text)
            assert not reply.json().get("detail", "").startswith("no VM named") if reply.status_code == 404 else True
        else:
            assert reply.status_code == 403, (role, action, reply.text)
            assert action in reply.json()["detail"]
    # Listing shows only the own project's VMs.
    names = [vm["name"] for vm in me.get("/api/vms").json()]
    if role == "manager":  # it deleted a1 as its last action (a clone of it, in alpha, may remain)
        assert "a1" not in names and set(names) <= {"a1-clone"}
    else:
        assert names == ["a1"]
    # The other project's member cannot see alpha at all.
    beta = world.client("beta-manager")
    assert [vm["name"] for vm in beta.get("/api/vms").json()] == ["b1"]
    assert beta.get("/api/projects/alpha").status_code == 404


def test_admin_sees_every_vm_with_its_project(make_app: AppFactory, client: TestClient) -> None:
    make_world(client.app, client)  # type: ignore[arg-type]
    listed = {vm["name"]: vm["project"] for vm in client.get("/api/vms").json()}
    assert listed == {"a1": "alpha", "b1": "beta", "busy": None}
    assert client.get("/api/vms/a1").json()["project"] == "alpha"
    # Adopting a foreign VM brings it into a project, where its members see it.
    assert client.post("/api/vms/busy/adopt", json={"project": "beta"}).json()["project"] == "beta"
    assert client.get("/api/vms/busy").json()["project"] == "beta"


def test_host_views_are_for_administrators(make_app: AppFactory, client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    manager = world.client("alpha-manager")
    for path in ("/api/host", "/api/hostview", "/api/users"):
        assert manager.get(path).status_code == 403, path
        assert client.get(path).status_code == 200, path


ISO = bytes(32769) + b"CD001" + bytes(2048)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_on_project_actions(make_app: AppFactory, client: TestClient, role: str) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    me = world.client(f"alpha-{role}")
    manager = role == "manager"
    made = me.post("/api/vms", json={"name": f"new-{role}", "template": "q35-virtio", "project": "alpha"})
    assert made.status_code == (201 if manager else 403), made.text
    elsewhere = me.post("/api/vms", json={"name": f"new2-{role}", "template": "q35-virtio", "project": "beta"})
    assert elsewhere.status_code == 404 and elsewhere.json()["detail"] == "no project named 'beta'"
    upload = me.put(f"/api/isos/{role}.iso", params={"project": "alpha"}, content=ISO)
    assert upload.status_code == (201 if manager else 403), upload.text
    assert me.put("/api/isos/x.iso", params={"project": "beta"}, content=ISO).status_code == 404
    shown = me.get("/api/projects/alpha")
    assert shown.status_code == 200 and shown.json()["role"] == role
    assert ("members" in shown.json()) == manager  # who belongs: managers (and administrators) only
    assert me.get("/api/projects/beta").status_code == 404
    assert [p["name"] for p in me.get("/api/projects").json()] == ["alpha"]
    for admin_only in (("POST", "/api/projects", {"name": "mine"}), ("PATCH", "/api/projects/alpha", {"vcpus": 99}),
                       ("PUT", "/api/projects/alpha/members/alpha-viewer", {"role": "manager"}),
                       ("POST", "/api/auth/users", {"username": "eve", "password": "long-enough"})):
        assert me.request(admin_only[0], admin_only[1], json=admin_only[2]).status_code == 403, admin_only

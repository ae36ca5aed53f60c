"""API tokens scoped to one project and a role no higher than the owner's, with expiry and revocation;
the audit log of state-changing actions, readable by managers (their project) and administrators."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import update
from tenancy_helpers import make_world

from pg_support import both_backends  # noqa: F401 (every test on SQLite and on PostgreSQL)
from vmdeck.store.db import ApiToken


def _bearer(client: TestClient, token: str) -> TestClient:
    other = TestClient(client.app)
    other.headers["Authorization"] = f"Bearer {token}"
    return other


def test_tokens_are_scoped_capped_and_revocable(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    operator = world.client("alpha-operator")
    # No higher than the owner's role, only in the owner's projects.
    too_high = operator.post("/api/auth/tokens", json={"name": "t", "project": "alpha", "role": "manager"})
    assert too_high.status_code == 422 and too_high.json()["field"] == "role"
    assert operator.post("/api/auth/tokens", json={"name": "t", "project": "beta"}).status_code == 404
    made = operator.post("/api/auth/tokens", json={"name": "ci", "role": "viewer", "expires_in_days": 1})
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["project"], body["role"]) == ("alpha", "viewer") and body["expires_at"]
    script = _bearer(client, body["token"])
    assert [vm["name"] for vm in script.get("/api/vms").json()] == ["a1"]
    assert script.post("/api/vms/a1/start").status_code == 403  # the token's role, not the owner's
    assert script.get("/api/vms/b1").status_code == 404
    # Revoked: refused at once, and listed as revoked.
    assert operator.delete(f"/api/auth/tokens/{body['id']}").status_code == 200
    gone = script.get("/api/vms")
    assert gone.status_code == 401 and gone.json()["detail"].startswith("API token 'ci' was revoked at 20")
    listed = operator.get("/api/auth/tokens").json()
    assert listed[0]["revoked_at"] is not None


def test_expired_tokens_are_refused(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    manager = world.client("alpha-manager")
    body = manager.post("/api/auth/tokens", json={"name": "short", "expires_in_days": 1}).json()
    assert body["role"] == "manager"
    with client.app.state.ctx.accounts.db.begin() as s:  # type: ignore[attr-defined]
        s.execute(update(ApiToken).where(ApiToken.id == body["id"])
                  .values(expires_at=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1)))
    refused = _bearer(client, body["token"]).get("/api/vms")
    assert refused.status_code == 401
    # The holder is told what to do about it: which token, expired when.
    assert refused.json()["detail"].startswith("API token 'short' expired at 20"), refused.json()
    assert "make a new one" in refused.json()["detail"]
    assert "expired" not in _bearer(client, "vmdeck_never-issued").get("/api/vms").json()["detail"]
    # Non-administrators' tokens always expire.
    forever = manager.post("/api/auth/tokens", json={"name": "forever", "expires_in_days": None})
    assert forever.status_code == 422


def test_state_changes_are_audited_and_shown_by_project(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    operator = world.client("alpha-operator")
    assert operator.post("/api/vms/a1/start").status_code == 200
    assert operator.post("/api/vms/a1/start").status_code == 409  # already running: recorded with its result
    assert operator.delete("/api/vms/a1").status_code == 403
    assert world.client("beta-manager").post("/api/vms/b1/start").status_code == 200
    manager = world.client("alpha-manager")
    entries = manager.get("/api/audit").json()
    mine = [(e["user"], e["action"], e["vm"], e["status"]) for e in entries if e["user"] == "alpha-operator"]
    # The refused delete is alpha's too: its managers see attempts on their project.
    assert mine[:3] == [("alpha-operator", "vm.delete", "a1", 403), ("alpha-operator", "vm.power", "a1", 409),
                        ("alpha-operator", "vm.power", "a1", 200)]
    assert {e["project"] for e in entries} == {"alpha"}  # nothing of beta's
    assert entries[0]["at"].endswith("Z") and entries[0]["result"]
    # Viewers and operators read nothing; administrators read everything, refusals included.
    assert world.client("alpha-operator").get("/api/audit").json() == []
    everything = client.get("/api/audit", params={"limit": 500}).json()
    assert {"alpha", "beta"} <= {e["project"] for e in everything}
    assert any(e["user"] == "alpha-operator" and e["status"] == 403 and e["action"] == "vm.delete"
               for e in everything)
    assert client.get("/api/audit", params={"vm": "b1"}).json()[0]["user"] == "beta-manager"
    # A request the API cannot parse is recorded as what it was (422), not as a crash.
    assert operator.post("/api/vms/a1/shutdown", json={"timeout": "soon"}).status_code == 422
    assert manager.get("/api/audit").json()[0]["status"] == 422
    page = manager.get("/audit")
    assert page.status_code == 200 and "/static/js/audit.js" in page.text


def test_the_audit_log_filters_by_user_action_and_time(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    assert world.client("alpha-operator").post("/api/vms/a1/start").status_code == 200
    assert world.client("beta-manager").post("/api/vms/b1/start").status_code == 200
    mine = client.get("/api/audit", params={"user": "alpha-operator"}).json()
    assert mine and {e["user"] for e in mine} == {"alpha-operator"}
    # The method is recorded with the path: POST and DELETE of one path read differently.
    assert mine[0]["target"] == "POST /api/vms/a1/start"
    power = client.get("/api/audit", params={"action": "vm.power"}).json()
    assert {e["action"] for e in power} == {"vm.power"}
    assert {e["action"] for e in client.get("/api/audit", params={"action": "vm"}).json()} <= {
        "vm.power", "vm.create", "vm.delete", "vm.resize", "vm.devices", "vm.media", "vm.snapshot", "vm.console"}
    now = dt.datetime.now(dt.UTC)
    assert client.get("/api/audit", params={"since": (now + dt.timedelta(hours=1)).isoformat()}).json() == []
    recent = client.get("/api/audit", params={"since": (now - dt.timedelta(hours=1)).isoformat(),
                                              "until": (now + dt.timedelta(hours=1)).isoformat()}).json()
    assert {"alpha-operator", "beta-manager"} <= {e["user"] for e in recent}

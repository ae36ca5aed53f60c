"""A token never mints a stronger or longer-lived token, and never sees or revokes its owner's other tokens.

The matrix: for each role a token can have (and an administrator's host-wide and project tokens),
every role and lifetime it may ask for, with what it may and may not get.
"""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from tenancy_helpers import ROLES, make_world


def _bearer(client: TestClient, token: str) -> TestClient:
    other = TestClient(client.app)
    other.headers["Authorization"] = f"Bearer {token}"
    return other


def _at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.removesuffix("Z"))


def _rank(role: str) -> int:
    return ROLES.index(role)


@pytest.mark.parametrize("token_role", ROLES)
def test_a_token_creates_tokens_only_within_its_role_project_and_expiry(client: TestClient,
                                                                        token_role: str) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    owner = world.client("alpha-manager")  # the owner could make manager tokens: the token's role is the cap
    made = owner.post("/api/auth/tokens", json={"name": "parent", "role": token_role, "expires_in_days": 1})
    assert made.status_code == 201, made.text
    parent = made.json()
    script = _bearer(client, parent["token"])
    for wanted in ROLES:
        child = script.post("/api/auth/tokens", json={"name": f"child-{wanted}", "role": wanted,
                                                       "expires_in_days": 0.5})
        if _rank(wanted) <= _rank(token_role):
            assert child.status_code == 201, (token_role, wanted, child.text)
            assert (child.json()["project"], child.json()["role"]) == ("alpha", wanted)
        else:
            assert child.status_code == 422 and child.json()["field"] == "role", (token_role, wanted, child.text)
    # The default role is the token's own, not its owner's.
    default = script.post("/api/auth/tokens", json={"name": "default-role", "expires_in_days": 0.5})
    assert default.status_code == 201 and default.json()["role"] == token_role, default.text
    # Never longer-lived: a longer lifetime or none at all is refused; unsaid, it ends with the parent.
    for days in (2, 3650, None):
        longer = script.post("/api/auth/tokens", json={"name": "longer", "role": "viewer", "expires_in_days": days})
        assert longer.status_code == 422 and longer.json()["field"] == "expires_in_days", (days, longer.text)
    unsaid = script.post("/api/auth/tokens", json={"name": "unsaid", "role": "viewer"})
    assert unsaid.status_code == 201, unsaid.text
    assert _at(unsaid.json()["expires_at"]) <= _at(parent["expires_at"])
    # Never another project, not even one the owner belongs to as well.
    client.put("/api/projects/beta/members/alpha-manager", json={"role": "manager"})
    other = script.post("/api/auth/tokens", json={"name": "beta", "project": "beta", "role": "viewer",
                                                   "expires_in_days": 0.5})
    assert other.status_code == 422 and other.json()["field"] == "project", other.text


def test_a_token_sees_and_revokes_only_itself(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    owner = world.client("alpha-operator")
    first = owner.post("/api/auth/tokens", json={"name": "first", "role": "viewer", "expires_in_days": 1}).json()
    second = owner.post("/api/auth/tokens", json={"name": "second", "expires_in_days": 1}).json()
    script = _bearer(client, first["token"])
    assert [t["id"] for t in script.get("/api/auth/tokens").json()] == [first["id"]]
    # The owner's other token: as unknown as one that does not exist, and it keeps working.
    assert script.delete(f"/api/auth/tokens/{second['id']}").status_code == 404
    assert _bearer(client, second["token"]).post("/api/vms/a1/start").status_code == 200
    # The minted tokens' powers are their roles': a viewer's child cannot power the VM off.
    child = script.post("/api/auth/tokens", json={"name": "child", "role": "viewer"}).json()
    assert _bearer(client, child["token"]).post("/api/vms/a1/poweroff").status_code == 403
    # Itself: yes (a leaked token can be killed with itself).
    assert script.delete(f"/api/auth/tokens/{first['id']}").status_code == 200
    assert script.get("/api/vms").status_code == 401
    # The owner, signed in, still sees and manages all of them.
    assert {t["name"] for t in owner.get("/api/auth/tokens").json()} == {"first", "second", "child"}


def test_administrators_tokens_stay_within_themselves_too(client: TestClient) -> None:
    make_world(client.app, client)  # type: ignore[arg-type]
    host_wide = client.post("/api/auth/tokens", json={"name": "host", "expires_in_days": 1}).json()
    assert host_wide["project"] is None
    script = _bearer(client, host_wide["token"])
    # A host-wide administrator token may make project tokens with any role, but not outlive itself.
    made = script.post("/api/auth/tokens", json={"name": "p", "project": "alpha", "role": "manager",
                                                  "expires_in_days": 0.5})
    assert made.status_code == 201, made.text
    assert script.post("/api/auth/tokens", json={"name": "forever", "expires_in_days": None}).status_code == 422
    # An administrator's project token with the viewer role is a viewer there, and mints viewers at most.
    viewer = client.post("/api/auth/tokens", json={"name": "v", "project": "alpha", "role": "viewer",
                                                   "expires_in_days": 1}).json()
    minted = _bearer(client, viewer["token"]).post("/api/auth/tokens", json={
        "name": "m", "role": "manager", "expires_in_days": 0.5})
    assert minted.status_code == 422 and minted.json()["field"] == "role", minted.text
    host = _bearer(client, viewer["token"]).post("/api/auth/tokens", json={
        "name": "h", "project": None, "expires_in_days": 0.5})
    assert host.status_code == 201 and host.json()["project"] == "alpha", host.text  # its project, never host-wide

"""What the audit log tells a project's managers: attempts on their project (refusals are logged under
the project they aimed at), numbered within the project, and nothing of other projects' activity."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tenancy_helpers import make_world


def test_refused_attacks_are_logged_under_the_victim_project(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    attacker = world.client("beta-manager")
    assert attacker.post("/api/vms/a1/poweroff").status_code == 404  # alpha's VM: as if missing
    assert world.client("alpha-viewer").post("/api/vms/a1/poweroff").status_code == 403
    victims = world.client("alpha-manager").get("/api/audit").json()
    refused = [(e["user"], e["vm"], e["status"]) for e in victims if e["status"] in (403, 404)]
    assert ("beta-manager", "a1", 404) in refused and ("alpha-viewer", "a1", 403) in refused, victims
    # The attacker's own manager (itself here) sees nothing of alpha: not the VM, not the project.
    assert all(e["project"] == "beta" for e in attacker.get("/api/audit").json())
    # Administrators see it with the project it aimed at.
    everything = client.get("/api/audit", params={"limit": 500}).json()
    assert any(e["user"] == "beta-manager" and e["project"] == "alpha" and e["status"] == 404 for e in everything)


def test_managers_see_entries_numbered_within_their_project(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    beta = world.client("beta-manager")
    for _ in range(3):  # activity elsewhere must not show as gaps in alpha's numbering
        beta.post("/api/vms/b1/start")
        beta.post("/api/vms/b1/poweroff")
    alpha = world.client("alpha-manager")
    for _ in range(2):
        alpha.post("/api/vms/a1/start")
        alpha.post("/api/vms/a1/poweroff")
    mine = alpha.get("/api/audit").json()
    ids = [e["id"] for e in mine]
    assert ids == list(range(len(mine), 0, -1)), ids  # 1, 2, 3 ... in alpha, newest first, no gaps
    global_ids = [e["id"] for e in client.get("/api/audit", params={"project": "alpha"}).json()]
    assert max(global_ids) > max(ids)  # the administrator's are the host's sequence
    # Paging in the project's own numbers.
    page = alpha.get("/api/audit", params={"before_id": ids[1], "limit": 2}).json()
    assert [e["id"] for e in page] == ids[2:4]

"""Networks through the REST API, on libvirt's test driver: a project's manager makes its network and
its members see it; another project's members get 404 for it exactly as for an unknown one; a viewer
cannot create one; a VM of another project cannot join it; administrators see every network."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tenancy_helpers import make_world

from conftest import AppFactory


def test_a_projects_network_is_its_own(make_app: AppFactory, client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    manager, viewer, stranger = (world.client(u) for u in ("alpha-manager", "alpha-viewer", "beta-manager"))
    made = manager.post("/api/networks", json={"name": "alpha-net", "subnet": "10.232.1.0/24"})
    assert made.status_code == 201, made.text
    assert made.json()["project"] == "alpha" and made.json()["mode"] == "nat"
    assert viewer.post("/api/networks", json={"name": "v-net", "subnet": "10.232.2.0/24"}).status_code == 403
    assert [n["name"] for n in viewer.get("/api/networks").json()] == ["alpha-net"]
    assert stranger.get("/api/networks").json() == []
    foreign = stranger.get("/api/networks/alpha-net")
    unknown = stranger.get("/api/networks/nosuch-net")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["detail"].replace("alpha-net", "X") == unknown.json()["detail"].replace("nosuch-net", "X")
    assert stranger.delete("/api/networks/alpha-net").status_code == 404
    assert viewer.delete("/api/networks/alpha-net").status_code == 403
    # beta's VM cannot join alpha's network; alpha's can.
    refused = stranger.post("/api/vms/b1/nics", json={"network": "alpha-net"})
    assert refused.status_code == 404 and "alpha-net" in refused.json()["detail"]
    joined = manager.post("/api/vms/a1/nics", json={"network": "alpha-net"})
    # Past the network check: the test driver itself cannot plug devices in.
    assert joined.status_code == 422 and "not supported by the connection driver" in joined.json()["detail"]
    assert "alpha-net" in {n["name"] for n in client.get("/api/networks").json()}
    bad = manager.post("/api/networks", json={"name": "x-net", "subnet": "10.232.1.0/25"})
    assert bad.status_code == 409 and "overlaps" in bad.json()["detail"]
    assert manager.post("/api/networks", json={"name": "y-net", "subnet": "1.2.3.0/24"}).json()["field"] == "subnet"

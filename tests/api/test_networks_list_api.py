"""The Networks page's list (GET /api/networks) on libvirt's test driver: a member sees their project's networks
and the libvirt networks an administrator allowed the project (marked `allowed`), each with the VMs on it the
member may see, and `can_manage` only where they may delete; the Networks page itself is for anyone signed in."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tenancy_helpers import make_world

from vmdeck.host.connection import Host


def test_members_see_their_projects_and_allowed_networks(client: TestClient, test_host: Host) -> None:
    test_host.conn.raw.networkCreateXML("<network><name>shared-lan</name><bridge name='virbr-shl'/></network>")
    test_host.conn.raw.networkCreateXML("<network><name>mgmt-only</name><bridge name='virbr-mgo'/></network>")
    world = make_world(client.app, client)  # type: ignore[arg-type]
    manager, viewer, stranger = (world.client(u) for u in ("alpha-manager", "alpha-viewer", "beta-manager"))
    assert manager.post("/api/networks", json={"name": "alpha-net", "subnet": "10.233.1.0/24"}).status_code == 201
    assert stranger.post("/api/networks", json={"name": "beta-net", "subnet": "10.233.2.0/24"}).status_code == 201
    client.app.state.ctx.tenancy.allow_network("alpha", "shared-lan")  # type: ignore[attr-defined]
    # b1 (beta's VM) is on the shared network too: alpha's members must not learn of it.
    xml = test_host.lookup("b1").xml(inactive=True)
    test_host.conn.raw.defineXML(xml.replace("</devices>", "<interface type='network'><source network='shared-lan'/>"
                                                           "</interface></devices>"))
    rows = {n["name"]: n for n in viewer.get("/api/networks").json()}
    assert set(rows) == {"alpha-net", "shared-lan"}
    assert rows["alpha-net"]["project"] == "alpha" and not rows["alpha-net"]["allowed"]
    assert rows["shared-lan"]["allowed"] and rows["shared-lan"]["vms"] == []
    assert not rows["alpha-net"]["can_manage"] and not rows["shared-lan"]["can_manage"]
    mine = {n["name"]: n for n in manager.get("/api/networks").json()}
    assert mine["alpha-net"]["can_manage"] and not mine["shared-lan"]["can_manage"]
    everything = {n["name"]: n for n in client.get("/api/networks").json()}
    assert {"alpha-net", "beta-net", "shared-lan", "mgmt-only"} <= set(everything)
    assert everything["shared-lan"]["vms"] == ["b1"] and all(n["can_manage"] for n in everything.values())
    # The page: a viewer reads, without the create form; a manager gets the form.
    page = viewer.get("/networks")
    assert page.status_code == 200 and 'id="network-table"' in page.text and 'id="network-form"' not in page.text
    assert 'id="network-form"' in manager.get("/networks").text
    # Deleting a network a VM uses is refused in words.
    busy = client.delete("/api/networks/shared-lan")
    assert busy.status_code == 409 and "b1" in busy.json()["detail"] and "remove their NICs" in busy.json()["detail"]

"""Device, media, key, screenshot and host-view endpoints on libvirt's test driver: routing, errors, JSON."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient


def test_devices_table(client: TestClient) -> None:
    client.post("/api/vms", json={"name": "dev1", "template": "q35-virtio"})
    rows = client.get("/api/vms/dev1/devices").json()
    assert {r["kind"] for r in rows} >= {"disk", "nic"}
    assert all(r["status"] for r in rows)
    # libvirt's test driver cannot attach devices: the refusal arrives as a one-line JSON error
    # (the real hot-plug is proven in the browser test against QEMU).
    refused = client.post("/api/vms/dev1/disks", json={"size_gib": 1, "bus": "virtio"})
    # 422: a request this host can never carry out (not 503, which would say "try again later").
    assert refused.status_code == 422 and "not supported" in refused.json()["detail"]
    assert [r["key"] for r in client.get("/api/vms/dev1/devices").json()] == [r["key"] for r in rows]


def test_device_errors(client: TestClient) -> None:
    client.post("/api/vms", json={"name": "dev2", "template": "q35-virtio"})
    assert client.get("/api/vms/ghost/devices").status_code == 404
    bad_bus = client.post("/api/vms/dev2/disks", json={"size_gib": 1, "bus": "floppy"})
    assert bad_bus.status_code == 422 and bad_bus.json()["error"] == "invalid_input"
    assert client.post("/api/vms/dev2/disks", json={"size_gib": -1}).status_code == 422
    assert client.delete("/api/vms/dev2/disks/vdz").status_code == 404
    bad_model = client.post("/api/vms/dev2/nics", json={"model": "ne2000"})
    assert bad_model.status_code == 422 and bad_model.json()["field"] == "model"
    assert client.delete("/api/vms/dev2/nics/52:54:00:00:00:99").status_code == 404


def test_media_from_the_library_only(client: TestClient, _data_dir: Path) -> None:
    client.post("/api/vms", json={"name": "dev3", "template": "q35-virtio"})
    path = client.post("/api/vms/dev3/media", json={"iso": "/etc/passwd"})
    assert path.status_code == 422 and path.json()["field"] == "iso"
    assert client.post("/api/vms/dev3/media", json={"iso": "missing.iso"}).status_code == 404
    assert client.post("/api/vms/ghost/media", json={"iso": "x.iso"}).status_code in (404,)
    assert client.post("/api/vms/dev3/cdroms", json={"bus": "virtio"}).status_code == 422


def test_keys_and_screenshot_errors(client: TestClient) -> None:
    bad = client.post("/api/vms/busy/keys", json={"keys": ["ctrl-nosuchkey"]})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_input"
    assert client.post("/api/vms/busy/keys", json={"keys": []}).status_code == 422
    assert client.post("/api/vms/ghost/type", json={"text": "hi"}).status_code == 404
    client.post("/api/vms/busy/poweroff")
    stopped = client.get("/api/vms/busy/screenshot")
    assert stopped.status_code == 409 and stopped.json()["error"] == "wrong_state"


def test_hostview_reports_what_it_cannot_read(client: TestClient) -> None:
    # The test driver's VM has no QEMU process on this host: the view says so instead of failing.
    reply = client.get("/api/vms/busy/hostview")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["name"] == "busy" and body["error"]
    assert client.get("/api/vms/ghost/hostview").status_code == 404
    assert client.get("/api/hostview").status_code == 200

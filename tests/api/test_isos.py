"""The ISO library: upload, list, use in a VM, refuse to delete while used, delete."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient


def test_upload_list_use_and_delete(client: TestClient, _data_dir: Path) -> None:
    payload = bytes(32769) + b"CD001" + bytes(4096)  # an ISO 9660 volume descriptor at sector 16
    up = client.put("/api/isos/tools.iso", content=payload, headers={"content-type": "application/octet-stream"})
    assert up.status_code == 201, up.text
    assert (_data_dir / "isos" / "tools.iso").read_bytes() == payload
    assert (_data_dir / "isos" / "tools.iso").stat().st_mode & 0o444 == 0o444
    listed = client.get("/api/isos").json()
    assert [(i["name"], i["size_bytes"], i["used_by"]) for i in listed] == [("tools.iso", len(payload), [])]
    again = client.put("/api/isos/tools.iso", content=payload)
    assert again.status_code == 409

    made = client.post("/api/vms", json={"name": "inst", "template": "q35-virtio", "cdrom": "tools.iso"})
    assert made.status_code == 201, made.text
    cdroms = [d for d in made.json()["disks"] if d["device"] == "cdrom"]
    assert cdroms[0]["source"] == str(_data_dir / "isos" / "tools.iso")
    assert client.get("/api/isos").json()[0]["used_by"] == ["inst"]
    busy = client.delete("/api/isos/tools.iso")
    assert busy.status_code == 409 and "inst" in busy.json()["detail"]

    assert client.delete("/api/vms/inst").status_code == 200
    assert client.delete("/api/isos/tools.iso").status_code == 200
    assert not (_data_dir / "isos" / "tools.iso").exists()
    assert client.get("/api/isos").json() == []


def test_upload_errors(client: TestClient, _data_dir: Path) -> None:
    for bad in ("../escape.iso", ".hidden.iso", "notes.txt"):
        reply = client.put(f"/api/isos/{bad}", content=b"x")
        assert reply.status_code in (404, 422), (bad, reply.status_code)
    named = client.put("/api/isos/notes.txt", content=b"x")
    assert named.status_code == 422 and named.json()["field"] == "name"
    empty = client.put("/api/isos/empty.iso", content=b"")
    assert empty.status_code == 422
    assert not (_data_dir / "isos" / "empty.iso").exists()
    assert list((_data_dir / "isos").glob(".*")) == []  # no partial file left behind
    assert client.delete("/api/isos/missing.iso").status_code == 404

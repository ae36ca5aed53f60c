"""POST /api/import: the package as the streamed body, a plan that creates nothing, an import held to the
project's quota, and nothing left in the staging folder whatever happened."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent.parent))
from ovabuild import build_ova  # noqa: E402


@pytest.fixture
def ova(tmp_path: Path) -> bytes:
    raw = tmp_path / "disk.img"
    raw.write_bytes(b"vmdeck" + bytes(4 << 20))
    return build_ova(tmp_path, raw, "appliance", vcpus=2, memory_mib=192).read_bytes()


def _staged(data_dir: Path) -> list[Path]:
    folder = data_dir / "imports"
    return list(folder.rglob("*")) if folder.exists() else []


def test_plan_then_import(client: TestClient, ova: bytes, _data_dir: Path) -> None:
    planned = client.post("/api/import", params={"filename": "appliance.ova", "plan": "true", "name": "app1"},
                          content=ova, headers={"content-type": "application/octet-stream"})
    assert planned.status_code == 201, planned.text
    body = planned.json()
    assert (body["name"], body["vcpus"], body["memory_mib"], body["source"]) == ("app1", 2, 192, "appliance.ova")
    assert body["disks"][0]["capacity_bytes"] == 5 << 20 and body["disks"][0]["bus"] == "scsi"
    assert client.get("/api/vms/app1").status_code == 404  # a plan creates nothing
    assert _staged(_data_dir) == []

    made = client.post("/api/import", params={"filename": "appliance.ova", "name": "app1", "disk_bus": "virtio"},
                       content=ova)
    assert made.status_code == 201, made.text
    shown = client.get("/api/vms/app1").json()
    assert (shown["vcpus"], shown["memory_mib"]) == (2, 192)
    disk = next(d for d in shown["disks"] if d["device"] == "disk")
    assert disk["target"] == "vda" and Path(disk["source"]).read_bytes()[:4] == b"QFI\xfb"  # qcow2 in the pool
    assert _staged(_data_dir) == []
    assert client.delete("/api/vms/app1").status_code == 200  # (the real file's removal: tests/integration)
    assert client.get("/api/vms/app1").status_code == 404


def test_refusals(client: TestClient, ova: bytes, _data_dir: Path) -> None:
    for filename in ("../x.ova", "notes.txt", ".hidden.ova", "a.ovf"):
        reply = client.post("/api/import", params={"filename": filename}, content=ova)
        assert reply.status_code == 422, (filename, reply.text)
    empty = client.post("/api/import", params={"filename": "x.ova"}, content=b"")
    assert empty.status_code == 422
    broken = client.post("/api/import", params={"filename": "x.ova"}, content=b"not a tar" * 100)
    assert broken.status_code == 422 and "not an OVA" in broken.json()["detail"]
    assert client.post("/api/projects", json={"name": "tight", "quota": {"disk_gib": 0.001}}).status_code == 201
    over = client.post("/api/import", params={"filename": "appliance.ova", "project": "tight", "name": "big"},
                       content=ova)
    assert over.status_code == 409 and over.json()["kind"] == "quota_exceeded", over.text
    assert client.get("/api/vms/big").status_code == 404
    assert _staged(_data_dir) == []

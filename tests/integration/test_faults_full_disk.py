"""A full disk: vmdeck's data dir and its storage pool on a small tmpfs the test mounts (its own libvirt
pool, VMDECK_POOL). Creating a VM or uploading an ISO that does not fit fails with a clear error and
leaves nothing behind: no volume, no VM, no journal record, no partial file."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from faults_support import PREFIX, VMDECK, scratch_dir

from vmdeck.api import Settings, create_app
from vmdeck.host.connection import Host, connect

PASSWORD = "full-disk-password"


@pytest.fixture
def small_fs(host: Host) -> Iterator[tuple[Path, str]]:
    """(data dir on a 24 MiB tmpfs, name of a libvirt pool of our own inside it)."""
    data = scratch_dir("vmdeck-test-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", str(data)], check=True)
    pool = f"{PREFIX}full"
    try:
        yield data, pool
    finally:
        try:
            found = host.conn.pool(pool)
        except Exception:  # noqa: BLE001 - never made
            found = None
        if found is not None:
            if found.is_active():
                found.raw.destroy()
            found.raw.undefine()
        # Lazy: the in-process app of the upload test may still hold its accounts database open.
        subprocess.run(["umount", "--lazy", str(data)], check=False)
        shutil.rmtree(data, ignore_errors=True)


def _env(data: Path, pool: str) -> dict[str, str]:
    return {**os.environ, "VMDECK_DATA_DIR": str(data), "VMDECK_POOL": pool, "COLUMNS": "200"}


def _create(data: Path, pool: str, name: str, disk: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VMDECK, "create", name, "-t", "q35-virtio", "--accel", "tcg", "--disk", disk],
                          capture_output=True, text=True, timeout=300, env=_env(data, pool))


def _left(host: Host, data: Path, pool: str, name: str) -> list[str]:
    left = [f"vm {name}"] if host.exists(name) else []
    found = host.conn.pool(pool)
    found.refresh()
    left += [f"volume {v}" for v in found.volume_names()]
    journal = data / "journal"
    left += [f"record {p.name}" for p in journal.iterdir()] if journal.is_dir() else []
    return left


def test_create_that_does_not_fit(host: Host, small_fs: tuple[Path, str]) -> None:
    data, pool = small_fs
    name = f"{PREFIX}full-{os.urandom(3).hex()}"
    # A disk larger than the pool's filesystem: refused before anything is made.
    big = _create(data, pool, name, "1")
    assert big.returncode == 2, big.stderr
    assert f"does not fit: pool '{pool}' has 0.0 GiB free" in big.stderr
    assert _left(host, data, pool, name) == []

    # The filesystem all but full: the size check passes (a 100 KiB disk, 160 KiB free), but qemu-img
    # cannot write even a thin qcow2's metadata (four 64 KiB clusters). libvirt's ENOSPC becomes one line.
    filler = data / "filler"
    stat = os.statvfs(data)
    keep = 160 * 1024
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4096", f"count={(stat.f_bavail * stat.f_frsize - keep) // 4096}"],
                   capture_output=True, check=True)
    full = _create(data, pool, name, "0.0001")
    assert full.returncode == 5, full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: no space left on {data / 'pool'} (pool '{pool}') for volume {name}-vda.qcow2"), last
    assert _left(host, data, pool, name) == []
    filler.unlink()


def test_upload_that_does_not_fit(small_fs: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    data, _pool = small_fs
    monkeypatch.setenv("VMDECK_DATA_DIR", str(data))
    # TestClient calls itself "testserver": a Host name the test app must allow.
    settings = Settings(db_path=data / "web" / "vmdeck.sqlite", admin_password=PASSWORD, events=False,
                        allowed_hosts=("localhost", "127.0.0.1", "::1", "testserver"))
    with connect("qemu:///system") as real, TestClient(create_app(settings, host=real)) as client:
        login = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        reply = client.put("/api/isos/huge.iso", content=b"\0" * (40 << 20))
        assert reply.status_code == 503, reply.text
        body = reply.json()
        assert body["error"] == "host_unavailable"
        assert body["detail"].startswith(f"no space left on {data / 'isos'} for huge.iso")
        assert list((data / "isos").iterdir()) == []  # neither the ISO nor its partial file
        # Space is back once the partial file is gone: a small upload still works.
        # (the smallest body the server takes for an ISO: its primary volume descriptor at sector 16)
        small = bytes(16 * 2048) + b"\1CD001\1" + bytes(2048 - 7)
        assert client.put("/api/isos/small.iso", content=small).status_code == 201

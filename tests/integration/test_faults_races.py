"""Two clients racing on one VM through a real `vmdeck serve` (threads, real libvirtd): one wins, the
other gets a clean 404/409 (never a 5xx), and nothing is orphaned (volumes, definitions, journal)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from faults_support import PREFIX, VMDECK, Serve, scratch_dir
from lxml import etree

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.storage.pool import POOL_NAME
from vmdeck.vm import lifecycle

# A small disk-booted VM: no guest image needed, QEMU idles in its firmware.
SMALL = {"template": "q35-virtio", "accel": "tcg", "memory_mib": 256, "disk_gib": 1}


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    data = scratch_dir("vmdeck-test-races-")
    server = Serve(data)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def names(host: Host) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        try:
            lifecycle.delete(host, name, force=True)
        except NotFound:
            pass


def _race(*calls: Callable[[httpx.Client], httpx.Response], serve: Serve) -> list[httpx.Response]:
    """Run the calls at the same moment, each on its own connection."""
    barrier = threading.Barrier(len(calls))
    replies: list[httpx.Response | BaseException] = [RuntimeError("not run")] * len(calls)

    def run(index: int, call: Callable[[httpx.Client], httpx.Response]) -> None:
        with serve.client() as api:
            barrier.wait()
            try:
                replies[index] = call(api)
            except BaseException as err:  # noqa: BLE001 - reported below
                replies[index] = err

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for reply in replies:
        assert isinstance(reply, httpx.Response), reply
        assert reply.status_code < 500, reply.text
        if reply.status_code >= 400:
            assert {"error", "detail", "field"} <= set(reply.json()), reply.text
    return replies  # type: ignore[return-value]


def _volumes_of(host: Host, name: str) -> list[str]:
    pool = host.conn.pool(POOL_NAME)
    pool.refresh()
    return sorted(v for v in pool.volume_names() if v.startswith(f"{name}-"))


def _no_records(serve: Serve) -> None:
    journal = serve.data / "journal"
    assert not list(journal.glob("*.json")) if journal.is_dir() else True


def test_two_creates_of_one_name(serve: Serve, host: Host, names: list[str]) -> None:
    for _round in range(3):
        name = f"{PREFIX}race-{uuid.uuid4().hex[:6]}"
        names.append(name)
        replies = _race(*[lambda api, n=name: api.post("/api/vms", json={"name": n, **SMALL})] * 2, serve=serve)
        assert sorted(r.status_code for r in replies) == [201, 409], [r.text for r in replies]
        loser = next(r for r in replies if r.status_code == 409)
        # Refused at the name's one reservation while the winner creates, or at libvirt's define after it.
        assert any(why in loser.json()["detail"] for why in ("already exists", "is being created right now"))
        assert host.exists(name)
        assert _volumes_of(host, name) == [f"{name}-vda.qcow2"]
        _no_records(serve)


def test_delete_races_start(serve: Serve, host: Host, names: list[str]) -> None:
    outcomes = set()
    for _round in range(4):
        name = f"{PREFIX}race-{uuid.uuid4().hex[:6]}"
        names.append(name)
        with serve.client() as api:
            assert api.post("/api/vms", json={"name": name, **SMALL}).status_code == 201
        volume = _volumes_of(host, name)
        assert volume
        deleted, started = _race(lambda api, n=name: api.delete(f"/api/vms/{n}"),
                                 lambda api, n=name: api.post(f"/api/vms/{n}/start"), serve=serve)
        outcomes.add((deleted.status_code, started.status_code))
        if deleted.status_code == 200:
            # Delete won: no VM left, not even a transient one, and its volume went with it.
            assert started.status_code in (404, 409), started.text
            assert not host.exists(name) and _volumes_of(host, name) == []
        else:
            # Start won: the VM runs, is still defined (persistent), and keeps its disk.
            assert deleted.status_code == 409 and started.status_code == 200, (deleted.text, started.text)
            dom = host.lookup(name)
            assert dom.is_active() and dom.is_persistent() and _volumes_of(host, name) == volume
    assert outcomes <= {(200, 404), (200, 409), (409, 200)}, outcomes


def _iso(serve: Serve, tmp: Path, label: str) -> str:
    folder = tmp / label
    folder.mkdir()
    (folder / "name.txt").write_text(label)
    subprocess.run([*VMDECK, "iso", "make", str(folder), "-o", str(tmp / f"{label}.iso")], check=True,
                   capture_output=True)
    with serve.client() as api:
        reply = api.put(f"/api/isos/{label}.iso", content=(tmp / f"{label}.iso").read_bytes())
        assert reply.status_code == 201, reply.text
    return f"{label}.iso"


def test_two_inserts_into_one_drive(serve: Serve, host: Host, names: list[str], tmp_path: Path) -> None:
    name = f"{PREFIX}race-{uuid.uuid4().hex[:6]}"
    names.append(name)
    with serve.client() as api:
        assert api.post("/api/vms", json={"name": name, **SMALL, "start": True}).status_code == 201
    isos = [_iso(serve, tmp_path, f"disc{uuid.uuid4().hex[:4]}") for _ in range(2)]
    for _round in range(3):
        replies = _race(*[lambda api, iso=iso: api.post(f"/api/vms/{name}/media", json={"iso": iso})
                          for iso in isos], serve=serve)
        statuses = [(r.status_code, r.text[:200]) for r in replies]
        assert all(r.status_code in (200, 409) for r in replies) and any(r.status_code == 200 for r in replies), statuses
        # The drive holds exactly one of the discs, the same one now and for the next boot.
        dom = host.lookup(name)
        sources = []
        for inactive in (False, True):  # live XML, then the saved one
            drive = etree.fromstring(dom.xml(inactive=inactive).encode()).find("devices/disk[@device='cdrom']/source")
            sources.append(Path(drive.get("file")).name if drive is not None else None)
        assert sources[0] == sources[1] and sources[0] in isos, sources
    # Both ISOs are still in the library; deleting the one in the drive is refused, the other goes.
    in_drive = sources[0]
    with serve.client() as api:
        assert api.delete(f"/api/isos/{in_drive}").status_code == 409
        other = next(iso for iso in isos if iso != in_drive)
        assert api.delete(f"/api/isos/{other}").status_code == 200

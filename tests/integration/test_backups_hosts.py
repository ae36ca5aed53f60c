"""Backups across hosts: restored onto a host that does not share this machine's files, and taken on the
host a VM was live-migrated to.

The second host is a libvirtd in network and mount namespaces of its own (nshosts.py): its pool and
NVRAM folder are its own, so what a restore puts there can only have gone through libvirt's storage
streams. The repository (under /var/tmp) stands for a share mounted at the same path on both hosts,
which a backup on the second host needs (its QEMU writes the disk files). One tiny VM and one second
host for the module; the tests run in order (the last one migrates the VM away).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from backup_support import disk_of, read_marker, write_marker
from fastapi.testclient import TestClient
from itest_support import PREFIX, READY_TIMEOUT_S, VMDECK, delete_vm, wait_for
from nshosts import NamespaceHost, start_hosts, stop_hosts

from vmdeck.api import Settings, create_app
from vmdeck.cluster.registry import HostEntry, Registry
from vmdeck.domxml.parse import parse_domain
from vmdeck.host.connection import Host
from vmdeck.host.events import ensure_event_loop
from vmdeck.spec.models import BootSpec, CdromSpec
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.storage.iso import make_iso
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm
from vmdeck.vm.host_files import download_file, download_folder
from vmdeck.vm.migrate import migrate
from vmdeck.vm.seeds import is_seed

PASSWORD = "backups-hosts-password"


@pytest.fixture(scope="module")
def second_ns(host: Host) -> Iterator[NamespaceHost]:
    (ns_host,) = start_hosts(host, 1)
    try:
        yield ns_host
    finally:
        stop_hosts([ns_host])


@pytest.fixture(scope="module")
def second(second_ns: NamespaceHost) -> Iterator[Host]:
    with second_ns.connect() as opened:
        yield opened


@pytest.fixture(autouse=True)
def registry(second_ns: NamespaceHost) -> Registry:
    """This test's registry (its own database, tests/conftest.py): `local` and the second host as h2."""
    reg = Registry()
    reg.add(HostEntry("h2", second_ns.uri))
    return reg


@pytest.fixture(scope="module")
def repo() -> Iterator[Path]:
    """A folder QEMU's user can pass through on both hosts (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}bkh-", dir="/var/tmp"))
    path.chmod(0o711)
    yield path / "repo"
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def vm(host: Host, second_ns: NamespaceHost) -> Iterator[str]:
    name = f"{PREFIX}bkh-{uuid.uuid4().hex[:6]}"
    create_vm(host, resolve("tiny", name, Overrides()))
    lifecycle.start(host, name, wait=True, timeout=READY_TIMEOUT_S)
    yield name
    delete_vm(host, name)  # still here when a test failed before the migration; else gone with the host


def vmdeck(repo: Path, *args: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "VMDECK_BACKUP_REPO": str(repo)}
    done = subprocess.run([*VMDECK, *args], capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def holds(image: Path, text: str) -> bool:
    """Whether the qcow2 `image` (a local file) starts with `text` (qemu-io reads it through the format)."""
    done = subprocess.run(["qemu-io", "-r", "-f", "qcow2", "-c", f"read -v 0 {len(text)}", str(image)],
                          capture_output=True, text=True)
    return done.returncode == 0 and text in done.stdout


def test_restore_onto_a_host_that_shares_no_files(host: Host, second: Host, vm: str, repo: Path,
                                                  tmp_path: Path) -> None:
    write_marker(host, vm, "AAAAAAAA")
    full = json.loads(vmdeck(repo, "backup", "create", vm, "--json"))
    write_marker(host, vm, "BBBBBBBB")
    inc = json.loads(vmdeck(repo, "backup", "create", vm, "--json"))
    assert inc["kind"] == "incremental", inc["reason"]
    write_marker(host, vm, "CCCCCCCC")

    # The incremental (read through its chain) restored onto h2 as a new VM: defined there only, its disk
    # in h2's own pool (not a file of this machine), and it boots there reading B.
    new = f"{PREFIX}bkh-new-{uuid.uuid4().hex[:4]}"
    said = vmdeck(repo, "backup", "restore", inc["id"], "--host", "h2", "--as", new)
    assert "restored as a new VM" in said and second.uri in said, said
    assert second.exists(new) and not host.exists(new)
    disk = disk_of(second, new)
    assert not Path(disk).exists()
    assert second.lookup(new).uuid() != host.lookup(vm).uuid()
    assert {n.mac for n in parse_domain(second.lookup(new).xml(inactive=True)).nics}.isdisjoint(
        {n.mac for n in parse_domain(host.lookup(vm).xml(inactive=True)).nics})
    lifecycle.start(second, new, wait=True, timeout=READY_TIMEOUT_S)
    assert read_marker(second, new) == "BBBBBBBB"
    lifecycle.poweroff(second, new)

    # The API restores the full backup onto h2 too; its disk there (read back through libvirt) holds A.
    ensure_event_loop()
    # No uri: the server serves the registered hosts; its database is the registry's (h2 registered above).
    settings = Settings(uri=None, db_path=Path(os.environ["VMDECK_DB"]), admin_password=PASSWORD,
                        allowed_hosts=("testserver",))
    env = {"VMDECK_BACKUP_REPO": str(repo)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with TestClient(create_app(settings)) as api:
            login = api.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
            api.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            by_api = f"{PREFIX}bkh-api-{uuid.uuid4().hex[:4]}"
            reply = api.post(f"/api/backups/{full['id']}/restore", json={"as_name": by_api, "host": "h2"})
            assert reply.status_code == 200, reply.text
            unknown = api.post(f"/api/backups/{full['id']}/restore", json={"as_name": "x", "host": "nosuch"})
            assert unknown.status_code == 404, unknown.text
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert second.exists(by_api) and not host.exists(by_api)
    copy = tmp_path / "api-disk.qcow2"
    download_file(second, disk_of(second, by_api), copy)
    assert holds(copy, "AAAAAAAA")
    assert read_marker(host, vm) == "CCCCCCCC"  # the source is untouched


def test_uefi_restore_onto_another_host_brings_nvram_tpm_and_a_new_seed(host: Host, second: Host, repo: Path,
                                                                    tmp_path: Path) -> None:
    uefi = f"{PREFIX}bkh-uefi-{uuid.uuid4().hex[:4]}"
    # A NoCloud seed in its CD drive (beside the repository: QEMU's user can read it there).
    cidata = tmp_path / "cidata"
    cidata.mkdir()
    (cidata / "meta-data").write_text(f"instance-id: {uefi}\nlocal-hostname: {uefi}\n")
    (cidata / "user-data").write_text("#cloud-config\n")
    seed = make_iso(cidata, repo.parent / f"{uefi}-seed.iso", label="cidata")
    seed.chmod(0o644)
    spec = resolve("q35-virtio", uefi, Overrides(memory_mib=256, disk_gib=1))
    create_vm(host, spec.model_copy(update={"boot": BootSpec(kind="uefi"), "cdroms": (CdromSpec(iso=seed),),
                                            "tpm": True}))
    try:
        lifecycle.start(host, uefi)  # libvirt makes the NVRAM from OVMF's template, swtpm its state
        nvram = Path(f"/var/lib/libvirt/qemu/nvram/{uefi}_VARS.fd")
        assert wait_for(nvram.exists)
        tpm_state = Path(f"/var/lib/libvirt/swtpm/{host.lookup(uefi).uuid()}/tpm2")
        assert wait_for(lambda: any(tpm_state.glob("*")))
        lifecycle.poweroff(host, uefi)
        with nvram.open("r+b") as store:  # a variable of this VM's own (as efibootmgr would write)
            store.seek(nvram.stat().st_size // 2)
            store.write(b"vmdeck-backup-marker")
        made = json.loads(vmdeck(repo, "backup", "create", uefi, "--json"))
        back = f"{PREFIX}bkh-uefi2-{uuid.uuid4().hex[:4]}"
        vmdeck(repo, "backup", "restore", made["id"], "--host", "h2", "--as", back)
        # h2's own NVRAM folder (its /var/lib/libvirt is private): read back through libvirt.
        there = f"/var/lib/libvirt/qemu/nvram/{back}_VARS.fd"
        assert not Path(there).exists()
        copy = tmp_path / "nvram.fd"
        download_file(second, there, copy)
        assert copy.read_bytes() == nvram.read_bytes()
        # Its seed went along, in h2's pool, with a new instance-id: cloud-init runs again in the new VM.
        there_seed = next(d.source for d in parse_domain(second.lookup(back).xml(inactive=True)).disks
                          if d.device == "cdrom" and d.source)
        assert there_seed != str(seed) and not Path(there_seed).exists()
        download_file(second, there_seed, tmp_path / "seed.iso")
        assert is_seed(str(tmp_path / "seed.iso"))
        assert f"instance-id: {back}-".encode() in (tmp_path / "seed.iso").read_bytes()
        # Its TPM state, under its own UUID there.
        (tmp_path / "tpm").mkdir()
        names = download_folder(second, f"/var/lib/libvirt/swtpm/{second.lookup(back).uuid()}/tpm2", tmp_path / "tpm")
        assert names and all((tmp_path / "tpm" / n).read_bytes() == (tpm_state / n).read_bytes() for n in names)
        assert all(o is not None and o[:2] == ((tpm_state / n).stat().st_uid, (tpm_state / n).stat().st_gid)
                   for n, o in names.items())  # swtpm's user's, as here
        # Restored here as a new VM, it starts: swtpm takes the restored state (its owner and modes kept).
        here = f"{PREFIX}bkh-uefi3-{uuid.uuid4().hex[:4]}"
        vmdeck(repo, "backup", "restore", made["id"], "--host", "local", "--as", here)
        try:
            lifecycle.start(host, here)
            assert lifecycle.current_state(host.lookup(here)) == "running"
            restored_state = Path(f"/var/lib/libvirt/swtpm/{host.lookup(here).uuid()}/tpm2")
            assert sorted(p.name for p in restored_state.glob("*")) == sorted(names)
        finally:
            delete_vm(host, here)
    finally:
        delete_vm(host, uefi)


def test_backup_after_live_migration_to_another_host(host: Host, second: Host, second_ns: NamespaceHost,
                                                     vm: str, repo: Path) -> None:
    before = json.loads(vmdeck(repo, "backup", "create", vm, "--json"))  # a chain here, with a checkpoint
    migrate(host, vm, second.uri, migrate_uri=f"tcp://{second_ns.addr}")
    assert second.exists(vm) and not host.exists(vm)

    # The first backup there cannot continue the chain (libvirt keeps no checkpoint across a migration):
    # a new full one, saying why. The next continues the new chain, on h2.
    moved = json.loads(vmdeck(repo, "backup", "create", vm, "--json"))
    assert moved["kind"] == "full", moved
    assert "moved from" in moved["reason"] and second.uri in moved["reason"], moved["reason"]
    assert before["id"] in moved["reason"]
    write_marker(second, vm, "DDDDDDDD")
    after = json.loads(vmdeck(repo, "backup", "create", vm, "--json"))
    assert after["kind"] == "incremental", after["reason"]
    shown = json.loads(vmdeck(repo, "backup", "show", after["id"], "--json"))
    assert shown["host"] == second.uri and shown["chain"] == [after["id"], moved["id"]]
    assert "all intact" in vmdeck(repo, "backup", "verify", after["id"])

    # What h2's QEMU wrote is the guest's disk there: restored here, it reads D.
    back = f"{PREFIX}bkh-home-{uuid.uuid4().hex[:4]}"
    vmdeck(repo, "backup", "restore", after["id"], "--host", "local", "--as", back)
    try:
        assert holds(Path(disk_of(host, back)), "DDDDDDDD")
    finally:
        delete_vm(host, back)

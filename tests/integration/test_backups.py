"""Backups on real VMs: what a restore brings back is what the guest had at each backup.

Two tiny VMs for the module: `running` carries the raw-sector scenario (write A, full, write B,
incremental, write C), the in-place restore and the snapshot revert; `stopped` (never booted
by the tests, its disk filled on the host) carries the shut-off backups, the SIGKILL and
`doctor --fix`, retention and export/import. Each test uses its own repository folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backup_support import disk_of, read_marker, sh, write_marker
from itest_support import PREFIX, READY_TIMEOUT_S, VMDECK, delete_vm, wait_for

from vmdeck.domxml.parse import parse_domain
from vmdeck.host.connection import Host
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm

MiB = 2**20


@pytest.fixture(scope="module", autouse=True)
def _own_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A database of the module's own (schedules, quotas), for the tests and the commands they run."""
    saved = os.environ.get("VMDECK_DB")
    os.environ["VMDECK_DB"] = str(tmp_path_factory.mktemp("db") / "vmdeck.sqlite")
    yield
    if saved is None:
        os.environ.pop("VMDECK_DB", None)
    else:
        os.environ["VMDECK_DB"] = saved


def vmdeck(repo: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "VMDECK_BACKUP_REPO": str(repo)}
    return subprocess.run([*VMDECK, *args], capture_output=True, text=True, timeout=timeout, env=env)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def backup(repo: Path, vm: str, *extra: str) -> dict:
    return json.loads(ok(vmdeck(repo, "backup", "create", vm, "--json", *extra)))


def host_read(image: str, offset: int, pattern: int, length: int = 512) -> bool:
    """Whether `image` holds `pattern` bytes there (qemu-io on the host; -U: readable while in use)."""
    done = subprocess.run(["qemu-io", "-U", "-r", "-f", "qcow2", "-c", f"read -P {pattern} {offset} {length}", image],
                          capture_output=True, text=True)
    return done.returncode == 0 and "Pattern verification failed" not in done.stdout


def host_write(image: str, offset: int, pattern: int, length: str) -> None:
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} {length}", image],
                   check=True, capture_output=True)


def boot(host: Host, vm: str) -> None:
    lifecycle.start(host, vm, wait=True, timeout=READY_TIMEOUT_S)


@pytest.fixture(scope="module")
def running(host: Host) -> Iterator[str]:
    name = f"{PREFIX}bk-run-{uuid.uuid4().hex[:6]}"
    create_vm(host, resolve("tiny", name, Overrides()))
    boot(host, name)
    yield name
    delete_vm(host, name)


@pytest.fixture(scope="module")
def stopped(host: Host) -> Iterator[str]:
    name = f"{PREFIX}bk-off-{uuid.uuid4().hex[:6]}"
    create_vm(host, resolve("tiny", name, Overrides()))
    # Enough data that a copy takes a moment (written on the host: the VM never runs).
    host_write(disk_of(host, name), 0, 0x5A, "128M")
    yield name
    delete_vm(host, name)


def _reachable_dir() -> Path:
    """A folder QEMU's user can pass through (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}bk-", dir="/var/tmp"))
    path.chmod(0o711)
    return path


@pytest.fixture
def tmp_repo_dir() -> Iterator[Path]:
    path = _reachable_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def repo(tmp_repo_dir: Path) -> Path:
    return tmp_repo_dir / "repo"


@pytest.fixture
def restored(host: Host) -> Iterator[Callable[[str], str]]:
    """restored(tag) -> a fresh test VM name, deleted after the test."""
    names: list[str] = []

    def name(tag: str) -> str:
        names.append(f"{PREFIX}bk-{tag}-{uuid.uuid4().hex[:6]}")
        return names[-1]

    yield name
    for made in names:
        delete_vm(host, made)


def test_full_then_incremental_restore_each_point(host: Host, running: str, repo: Path,
                                                   restored: Callable[[str], str]) -> None:
    write_marker(host, running, "AAAAAAAA")
    sh(host, running, "dd if=/dev/urandom of=/dev/vda bs=1M seek=1 count=16 conv=fsync 2>/dev/null")
    full = backup(repo, running)
    assert full["kind"] == "full" and "first" in full["reason"]

    write_marker(host, running, "BBBBBBBB")
    sh(host, running, "dd if=/dev/urandom of=/dev/vda bs=1M seek=32 count=1 conv=fsync 2>/dev/null")
    inc = backup(repo, running)
    assert inc["kind"] == "incremental", inc["reason"]
    write_marker(host, running, "CCCCCCCC")

    # The incremental holds about the 1 MiB changed, the full the 16 MiB written.
    shown = json.loads(ok(vmdeck(repo, "backup", "show", inc["id"], "--json")))
    assert shown["parent"] == full["id"] and shown["chain"] == [inc["id"], full["id"]]
    inc_disk = next(f for f in shown["files"] if f["role"] == "disk")
    full_disk = next(f for f in json.loads(ok(vmdeck(repo, "backup", "show", full["id"], "--json")))["files"]
                     if f["role"] == "disk")
    assert full_disk["size"] > 16 * MiB
    assert inc_disk["size"] < 3 * MiB, inc_disk
    assert inc_disk["parent"] == f"{full['id']}/disk-vda.qcow2"
    assert "verified, all intact" in ok(vmdeck(repo, "backup", "verify", inc["id"]))
    listed = json.loads(ok(vmdeck(repo, "backup", "list", running, "--json")))
    assert [b["id"] for b in listed] == [full["id"], inc["id"]]

    # The incremental restored as a new VM reads B; the full reads A; the source still reads C.
    as_inc = restored("inc")
    ok(vmdeck(repo, "backup", "restore", inc["id"], "--as", as_inc))
    src_view = parse_domain(host.lookup(running).xml(inactive=True))
    new_view = parse_domain(host.lookup(as_inc).xml(inactive=True))
    assert host.lookup(as_inc).uuid() != host.lookup(running).uuid()
    assert {n.mac for n in new_view.nics}.isdisjoint({n.mac for n in src_view.nics})
    boot(host, as_inc)
    assert read_marker(host, as_inc) == "BBBBBBBB"
    lifecycle.poweroff(host, as_inc)

    # The full one is read on the host (one guest boot per test is enough to show a restore boots).
    as_full = restored("full")
    ok(vmdeck(repo, "backup", "restore", full["id"], "--as", as_full))
    assert host_read(disk_of(host, as_full), 0, ord("A"), 8)
    assert read_marker(host, running) == "CCCCCCCC"


def test_verify_finds_one_flipped_byte(host: Host, running: str, repo: Path, tmp_path: Path) -> None:
    made = backup(repo, running, "--full")
    for victim in ("disk-vda.qcow2", "manifest"):
        copy = tmp_path / f"copy-{victim}"
        shutil.copytree(repo, copy)
        path = copy / made["id"] / victim
        data = bytearray(path.read_bytes())
        where = len(data) // 2 if victim == "manifest" else 100_000 % len(data)
        data[where] ^= 0x01
        path.write_bytes(bytes(data))
        found = vmdeck(copy, "backup", "verify", made["id"], "--repo", str(copy))
        assert found.returncode == 4, found.stdout + found.stderr
        assert victim in found.stderr
    assert vmdeck(repo, "backup", "verify", made["id"]).returncode == 0


def test_backup_after_snapshot_revert_starts_a_new_chain(host: Host, running: str, repo: Path,
                                                         restored: Callable[[str], str]) -> None:
    if lifecycle.current_state(host.lookup(running)) != "running":
        boot(host, running)
    backup(repo, running)
    ok(vmdeck(repo, "snapshot", "create", running, "s1"))
    write_marker(host, running, "SNAPSHOT")
    after_snapshot = backup(repo, running)  # libvirt's external snapshot carries the bitmap over
    assert after_snapshot["kind"] == "incremental", after_snapshot["reason"]
    ok(vmdeck(repo, "snapshot", "revert", running, "s1"))  # the VM is off, on a fresh overlay
    host_write(disk_of(host, running), 0, ord("R"), "512")
    made = backup(repo, running)
    assert made["kind"] == "full" and "new chain" in made["reason"], made["reason"]
    assert backup(repo, running)["kind"] == "incremental"
    back = restored("rev")
    ok(vmdeck(repo, "backup", "restore", made["id"], "--as", back))
    assert host_read(disk_of(host, back), 0, ord("R"))


def test_restore_in_place_refused_while_running_then_forced(host: Host, running: str, repo: Path) -> None:
    dom = host.lookup(running)
    if lifecycle.current_state(dom) != "shut off":
        lifecycle.poweroff(host, running)
    host_write(disk_of(host, running), 0, ord("K"), "512")
    kept = backup(repo, running)  # shut off: started paused for it
    host_write(disk_of(host, running), 0, ord("Z"), "512")
    uuid_before = dom.uuid()
    dom.start_paused()  # running as far as a restore is concerned, without a boot
    refused = vmdeck(repo, "backup", "restore", kept["id"])
    assert refused.returncode == 4 and "--force" in refused.stderr
    assert host_read(disk_of(host, running), 0, ord("Z"))
    ok(vmdeck(repo, "backup", "restore", kept["id"], "--force"))
    assert host.lookup(running).uuid() == uuid_before
    assert lifecycle.current_state(host.lookup(running)) == "shut off"
    assert host_read(disk_of(host, running), 0, ord("K"))
    # The restored VM has no checkpoint: the next backup starts a new chain and says why.
    again = backup(repo, running)
    assert again["kind"] == "full" and "checkpoint" in again["reason"], again["reason"]
    assert backup(repo, running)["kind"] == "incremental"


def test_sigkill_mid_backup_leaves_no_entry_and_doctor_fixes(host: Host, stopped: str, repo: Path) -> None:
    env = {**os.environ, "VMDECK_BACKUP_REPO": str(repo)}
    proc = subprocess.Popen([*VMDECK, "backup", "create", stopped], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(p.name.startswith(".") and (p / "disk-vda.qcow2").exists()
                             for p in repo.glob(".*")) if repo.is_dir() else False, timeout=300, interval=0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert json.loads(ok(vmdeck(repo, "backup", "list", "--json"))) == []
    findings = json.loads(ok(vmdeck(repo, "doctor", "--json")))["findings"]
    partial = [f for f in findings if f["kind"] == "backup-partial"]
    assert len(partial) == 1 and stopped in partial[0]["reason"]
    ok(vmdeck(repo, "doctor", "--fix"))
    assert [p for p in repo.iterdir()] == []
    # The VM the killed backup had started paused is off again, and the next backup works.
    assert wait_for(lambda: lifecycle.current_state(host.lookup(stopped)) == "shut off", timeout=120)
    made = backup(repo, stopped)
    assert made["kind"] == "full" and made["bytes"] > 120 * MiB
    assert lifecycle.current_state(host.lookup(stopped)) == "shut off"


def test_cancel_leaves_nothing(host: Host, stopped: str, repo: Path) -> None:
    from vmdeck.vm.backup_ops import cancel_backups

    env = {**os.environ, "VMDECK_BACKUP_REPO": str(repo)}
    proc = subprocess.Popen([*VMDECK, "backup", "create", stopped], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any((p / "disk-vda.qcow2").exists() for p in repo.glob(".*")) if repo.is_dir() else False,
             timeout=300, interval=0.05)
    assert len(cancel_backups(stopped, repo=repo)) == 1
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 4 and "cancelled" in err, err
    assert list(repo.iterdir()) == []  # no entry, no partial folder
    assert lifecycle.current_state(host.lookup(stopped)) == "shut off"
    findings = json.loads(ok(vmdeck(repo, "doctor", "--json")))["findings"]
    assert [f for f in findings if f["kind"] == "backup-partial"] == []


def test_schedule_on_a_shut_off_vm_keeps_exactly_three(host: Host, stopped: str, repo: Path,
                                                        restored: Callable[[str], str]) -> None:
    from vmdeck.vm.backup_ops import verify_backup
    from vmdeck.vm.backup_restore import restore_backup

    image = disk_of(host, stopped)
    ok(vmdeck(repo, "backup", "schedule", stopped, "--every", "6h", "--keep", "3", "--repo", str(repo)))
    ids = []
    for run in range(6):
        host_write(image, 0, 0x30 + run, "512")  # "0", "1", ... in the first sector
        if run == 1:  # the schedule ran moments ago: not due again for 6 hours
            assert ok(vmdeck(repo, "backup", "run-due")).strip() == "no backup is due"
        ran = ok(vmdeck(repo, "backup", "run-due", "--all"))
        match = re.search(rf"backup ({re.escape(stopped)}-\S+) of \S+: (full|incremental)", ran)
        assert match and match.group(2) == ("full" if run == 0 else "incremental"), ran
        ids.append(match.group(1))
    assert lifecycle.current_state(host.lookup(stopped)) == "shut off"
    kept = [b["id"] for b in json.loads(ok(vmdeck(repo, "backup", "list", stopped, "--json")))]
    assert kept == ids[3:]
    # The oldest kept one lost its ancestors: it was made self-contained and restores on its own.
    oldest = json.loads(ok(vmdeck(repo, "backup", "show", kept[0], "--json")))
    assert oldest["parent"] is None and oldest["consolidated"]
    for run, backup_id in zip(range(3, 6), kept, strict=True):
        assert verify_backup(backup_id, repo=repo).ok
        back = restored(f"ret{run}")
        restore_backup(host, backup_id, repo=repo, as_name=back)
        restored_disk = disk_of(host, back)
        assert host_read(restored_disk, 0, 0x30 + run) and host_read(restored_disk, MiB, 0x5A)
        delete_vm(host, back)
    ok(vmdeck(repo, "backup", "schedule", stopped, "--remove"))


def test_backup_storage_quota_refuses_up_front(host: Host, stopped: str, repo: Path) -> None:
    from vmdeck.store.backups import set_backup_quota
    from vmdeck.store.db import open_database
    from vmdeck.store.tenancy import Tenancy
    from vmdeck.vm.project import set_project

    db = open_database(Path(os.environ["VMDECK_DB"]))
    Tenancy(db).ensure_project("bkquota")
    set_backup_quota(db, "bkquota", 0.05)  # 51 MiB; the VM's disk holds 128 MiB
    set_project(host, stopped, "bkquota")
    try:
        refused = vmdeck(repo, "backup", "create", stopped)
        assert refused.returncode == 4 and "quota exceeded" in refused.stderr and "backup_gib" in refused.stderr
        assert not repo.exists() or list(repo.iterdir()) == []
        assert lifecycle.current_state(host.lookup(stopped)) == "shut off"
        set_backup_quota(db, "bkquota", 1)
        assert backup(repo, stopped)["kind"] == "full"
    finally:
        set_project(host, stopped, None)


def test_export_and_import(host: Host, stopped: str, repo: Path, tmp_repo_dir: Path,
                           restored: Callable[[str], str]) -> None:
    out = tmp_repo_dir / "vm.vmdeck"
    ok(vmdeck(repo, "export", stopped, "-o", str(out)))
    other = tmp_repo_dir / "other-repo"
    back = restored("imp")
    ok(vmdeck(other, "import-backup", str(out), "--as", back))
    assert host_read(disk_of(host, back), MiB, 0x5A)
    assert len(json.loads(ok(vmdeck(other, "backup", "list", "--json")))) == 1
    assert not repo.exists() or json.loads(ok(vmdeck(repo, "backup", "list", "--json"))) == []


def test_uefi_vm_backup_restores_its_nvram(host: Host, repo: Path, restored: Callable[[str], str]) -> None:
    from vmdeck.spec.models import BootSpec

    vm = restored("uefi")
    spec = resolve("q35-virtio", vm, Overrides(memory_mib=256, disk_gib=1))
    create_vm(host, spec.model_copy(update={"boot": BootSpec(kind="uefi")}))
    lifecycle.start(host, vm)  # libvirt makes the VM's NVRAM from OVMF's template at first start
    nvram = Path(f"/var/lib/libvirt/qemu/nvram/{vm}_VARS.fd")
    assert wait_for(nvram.exists)
    lifecycle.poweroff(host, vm)
    with nvram.open("r+b") as store:  # a variable of this VM's own (as efibootmgr would write)
        store.seek(nvram.stat().st_size // 2)
        store.write(b"vmdeck-backup-marker")
    saved = nvram.read_bytes()
    made = backup(repo, vm)
    back = restored("uefi-new")
    ok(vmdeck(repo, "backup", "restore", made["id"], "--as", back))
    assert Path(f"/var/lib/libvirt/qemu/nvram/{back}_VARS.fd").read_bytes() == saved
    lifecycle.delete(host, vm, force=True)
    assert not nvram.exists()
    ok(vmdeck(repo, "backup", "restore", made["id"]))  # the deleted VM comes back in place
    assert nvram.read_bytes() == saved
    lifecycle.start(host, vm)
    assert lifecycle.current_state(host.lookup(vm)) == "running"

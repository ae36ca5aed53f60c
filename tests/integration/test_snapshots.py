"""Snapshots on a real VM: data written through the guest is where each revert/delete says it is.

One tiny VM carries the whole scenario (snapshot, revert twice, a branch, delete by merge while
running and while off); every image in the pool that belongs to it passes `qemu-img check` after
every step, and after `vmdeck delete` none of its files is left.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from itest_support import READY_TIMEOUT_S, wait_for

from vmdeck.host.connection import Host
from vmdeck.paths import pool_dir
from vmdeck.storage.usage import image_usage
from vmdeck.vm import lifecycle


def _write(run_in_guest: Callable, vm: str, text: str) -> None:
    # Raw sectors of the data disk: no filesystem needed, and the tiny guest has dd.
    result = run_in_guest(vm, f"printf {text} | dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null && sync")
    assert result.exit_code == 0, result.stderr


def _read(run_in_guest: Callable, vm: str) -> str:
    return str(wait_for(lambda: run_in_guest(vm, "head -c 8 /dev/vda").stdout.decode("latin-1")))


def _files(vm: str) -> set[Path]:
    return {p for p in pool_dir().iterdir() if p.name.startswith(vm)}


def _check_all(vm: str) -> None:
    """qemu-img check on every image of the VM (-U: readable while QEMU holds it); all must be clean."""
    for path in _files(vm):
        if path.suffix == ".qcow2":
            done = subprocess.run(["qemu-img", "check", "-U", str(path)], capture_output=True, text=True)
            assert done.returncode == 0, f"{path}: {done.stdout}{done.stderr}"


def _boot(host: Host, vm: str) -> None:
    lifecycle.start(host, vm, wait=True, timeout=READY_TIMEOUT_S)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_snapshot_revert_branch_delete_and_vm_delete(vm_factory: Callable, run_in_guest: Callable, cli: Callable,
                                                     host: Host) -> None:
    vm = vm_factory("tiny")
    _write(run_in_guest, vm, "AAAAAAAA")
    _ok(cli("snapshot", "create", vm, "a", "--description", "wrote A"))
    _check_all(vm)
    _write(run_in_guest, vm, "BBBBBBBB")

    # Revert: the VM is left off; booted, it has A and not B.
    out = _ok(cli("snapshot", "revert", vm, "a"))
    assert "shut off" in out
    _check_all(vm)
    _boot(host, vm)
    assert _read(run_in_guest, vm) == "AAAAAAAA"

    # Revert again to the same snapshot works (a fresh overlay each time).
    _write(run_in_guest, vm, "BBBBBBBB")
    _ok(cli("snapshot", "revert", vm, "a"))
    _check_all(vm)
    _boot(host, vm)
    assert _read(run_in_guest, vm) == "AAAAAAAA"

    # A branch: two snapshots under "a"; `list` shows the tree.
    _write(run_in_guest, vm, "XXXXXXXX")
    _ok(cli("snapshot", "create", vm, "x"))
    _ok(cli("snapshot", "revert", vm, "a"))
    _boot(host, vm)
    _ok(cli("snapshot", "create", vm, "c"))
    _write(run_in_guest, vm, "CCCCCCCC")
    listing = json.loads(_ok(cli("snapshot", "list", vm, "--json")))
    assert listing["current"] == "c"
    assert {s["name"]: s["parent"] for s in listing["snapshots"]} == {"a": None, "x": "a", "c": "a"}
    shown = _ok(cli("snapshot", "list", vm))
    assert "├─ x" in shown and "└─ c" in shown
    _check_all(vm)

    # Delete the current snapshot while running (live block commit): C stays, across a power cycle.
    _ok(cli("snapshot", "delete", vm, "c"))
    _check_all(vm)
    assert json.loads(_ok(cli("snapshot", "list", vm, "--json")))["current"] == "a"
    lifecycle.poweroff(host, vm)
    _boot(host, vm)
    assert _read(run_in_guest, vm) == "CCCCCCCC"

    # Delete the unused branch "x" (its image is dropped) and then "a" while off (qemu-img commit).
    _ok(cli("snapshot", "delete", vm, "x"))
    _check_all(vm)
    lifecycle.poweroff(host, vm)
    _ok(cli("snapshot", "delete", vm, "a"))
    _check_all(vm)
    assert json.loads(_ok(cli("snapshot", "list", vm, "--json")))["snapshots"] == []
    # Merged all the way down: only the VM's own volume is left, and it holds C (read on the host:
    # the guest already showed C after the live merge; this step is the offline one).
    assert [p.name for p in _files(vm)] == [f"{vm}-vda.qcow2"]
    read = subprocess.run(["qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x43 0 8", str(pool_dir() / f"{vm}-vda.qcow2")],
                          capture_output=True, text=True)
    assert read.returncode == 0 and "Pattern verification failed" not in read.stdout, read.stdout

    # Bad input changes nothing.
    before = _files(vm)
    bad = cli("snapshot", "create", vm, "a/b")
    assert bad.returncode == 2 and "invalid snapshot name" in bad.stderr
    unknown = cli("snapshot", "revert", vm, "nope")
    assert unknown.returncode == 3 and "no snapshot named 'nope'" in unknown.stderr
    both = cli("snapshot", "create", vm, "m", "--memory")
    assert both.returncode == 4 and "running" in both.stderr
    assert _files(vm) == before and lifecycle.current_state(host.lookup(vm)) == "shut off"

    # With snapshots in place, `vmdeck delete` removes every overlay and saved file, and only those.
    _ok(cli("snapshot", "create", vm, "s1"))
    _ok(cli("snapshot", "create", vm, "s2"))
    usage = image_usage(host)
    assert all(usage.in_use(str(p)) for p in _files(vm))  # nothing of it lies around unused
    assert len(_files(vm)) == 3
    _ok(cli("delete", vm, "--force"))
    assert _files(vm) == set()


def test_raw_disk_is_refused_clearly(vm_factory: Callable, cli: Callable, tmp_path: Path) -> None:
    vm = vm_factory("tiny", start=False)
    raw = pool_dir() / f"{vm}-raw.img"
    subprocess.run(["truncate", "-s", "16M", str(raw)], check=True)
    try:
        _ok(cli("disk", "attach", vm, raw))
        before = _files(vm)
        refused = cli("snapshot", "create", vm, "s1")
        assert refused.returncode == 2 and "raw" in refused.stderr and "qcow2" in refused.stderr
        assert _files(vm) == before
        assert json.loads(_ok(cli("snapshot", "list", vm, "--json")))["snapshots"] == []
    finally:
        raw.unlink(missing_ok=True)


def test_uefi_snapshot_restores_nvram(vm_factory: Callable, cli: Callable, host: Host) -> None:
    """q35 + OVMF: the variable store saved with the snapshot is put back by revert, byte for byte."""
    from vmdeck.spec.models import BootSpec
    from vmdeck.spec.templates import Overrides, resolve
    from vmdeck.vm.create import create_vm

    vm = vm_factory("tiny", start=False, suffix="uefi-src")  # only for its unique name's cleanup
    lifecycle.delete(host, vm)
    spec = resolve("q35-virtio", vm, Overrides(memory_mib=256, disk_gib=1))
    create_vm(host, spec.model_copy(update={"boot": BootSpec(kind="uefi")}))
    lifecycle.start(host, vm)  # libvirt makes the VM's NVRAM from OVMF's template at first start
    nvram = Path(f"/var/lib/libvirt/qemu/nvram/{vm}_VARS.fd")
    assert wait_for(nvram.exists)
    lifecycle.poweroff(host, vm)
    saved = nvram.read_bytes()

    _ok(cli("snapshot", "create", vm, "fw"))
    with nvram.open("r+b") as store:  # a variable changed afterwards (as efibootmgr would)
        store.seek(len(saved) // 2)
        store.write(b"BootOrder changed")
    assert nvram.read_bytes() != saved
    _ok(cli("snapshot", "revert", vm, "fw"))
    assert nvram.read_bytes() == saved
    lifecycle.start(host, vm)  # OVMF starts on the restored store
    assert lifecycle.current_state(host.lookup(vm)) == "running"
    _ok(cli("delete", vm, "--force"))
    assert _files(vm) == set() and not nvram.exists()

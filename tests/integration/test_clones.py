"""Linked and full clones of a real VM: what each guest reads and writes, and deleting the source.

Rule under test: deleting a VM keeps every image another VM still reads (a linked clone's backing
file) and hands it to that VM; it goes when its last user is deleted.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from itest_support import READY_TIMEOUT_S, delete_vm, wait_for

from vmdeck.host.connection import Host
from vmdeck.paths import pool_dir
from vmdeck.vm import lifecycle


def _write(run_in_guest: Callable, vm: str, text: str) -> None:
    result = wait_for(lambda: run_in_guest(vm, f"printf {text} | dd of=/dev/vda bs=512 conv=sync,fsync "
                                               "2>/dev/null && sync"))
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]


def _read(run_in_guest: Callable, vm: str) -> str:
    return str(wait_for(lambda: run_in_guest(vm, "head -c 8 /dev/vda").stdout.decode("latin-1")))


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _files(*vms: str) -> set[Path]:
    return {p for p in pool_dir().iterdir() if any(p.name.startswith(f"{vm}-") for vm in vms)}


def _clean(*vms: str) -> None:
    for path in _files(*vms):
        if path.suffix == ".qcow2":
            done = subprocess.run(["qemu-img", "check", "-U", str(path)], capture_output=True, text=True)
            assert done.returncode == 0, f"{path}: {done.stdout}{done.stderr}"


def test_linked_and_full_clones(vm_factory: Callable, run_in_guest: Callable, cli: Callable, host: Host) -> None:
    src = vm_factory("tiny")
    _write(run_in_guest, src, "SOURCE01")

    # A running VM is only cloned --linked (which snapshots it first).
    refused = cli("clone", src, f"{src}-full")
    assert refused.returncode == 4 and "--linked" in refused.stderr
    assert not host.exists(f"{src}-full")

    # vm_factory deletes only the source; the clones are deleted here whatever happens.
    linked, full = f"{src}-lc", f"{src}-fc"
    try:
        made = json.loads(_ok(cli("clone", src, linked, "--linked", "--start", "--json")))
        lifecycle.wait_ready(host, linked, timeout=READY_TIMEOUT_S)
        source_view = json.loads(_ok(cli("show", src, "--json")))
        clone_view = json.loads(_ok(cli("show", linked, "--json")))
        assert clone_view["uuid"] != source_view["uuid"]
        assert {n["mac"] for n in clone_view["nics"]}.isdisjoint({n["mac"] for n in source_view["nics"]})
        # The clone sees the source's data; what each writes afterwards stays its own.
        assert _read(run_in_guest, linked) == "SOURCE01"
        _write(run_in_guest, linked, "LINKED01")
        _write(run_in_guest, src, "SOURCE02")
        assert _read(run_in_guest, linked) == "LINKED01" and _read(run_in_guest, src) == "SOURCE02"
        _clean(src, linked)
        backing = subprocess.run(["qemu-img", "info", "-U", "--output=json", made["disks"]["vda"]],
                                 capture_output=True, text=True, check=True)
        shared = json.loads(backing.stdout)["full-backing-filename"]

        # Deleting the source leaves the clone whole: the shared image stays, now the clone's.
        _ok(cli("delete", src, "--force"))
        assert Path(shared).exists()
        assert shared in json.loads(_ok(cli("show", linked, "--json")))["owned_volumes"]
        lifecycle.poweroff(host, linked)
        lifecycle.start(host, linked, wait=True, timeout=READY_TIMEOUT_S)
        assert _read(run_in_guest, linked) == "LINKED01"

        # A full clone (of the shut-off linked clone) has no backing file and lives on its own.
        lifecycle.poweroff(host, linked)
        made_full = json.loads(_ok(cli("clone", linked, full, "--start", "--json")))
        info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", made_full["disks"]["vda"]],
                                         capture_output=True, text=True, check=True).stdout)
        assert "backing-filename" not in info
        lifecycle.wait_ready(host, full, timeout=READY_TIMEOUT_S)
        assert _read(run_in_guest, full) == "LINKED01"
        _write(run_in_guest, full, "FULLCOPY")
        _clean(linked, full)
        _ok(cli("delete", linked))
        assert _read(run_in_guest, full) == "FULLCOPY"

        # Everything is gone with its last user.
        _ok(cli("delete", full, "--force"))
        assert _files(src, linked, full) == set() and not Path(shared).exists()
    finally:
        for clone in (full, linked):
            delete_vm(host, clone)

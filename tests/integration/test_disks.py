"""Disks hot-plugged into a real VM: seen in the guest's /sys/block, data kept across a power cycle, resize, removal."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from itest_support import wait_for

from vmdeck.host.connection import Host
from vmdeck.paths import data_dir
from vmdeck.vm import lifecycle

GIB_SECTORS = 1024**3 // 512


@pytest.fixture
def image_dir() -> Iterator[Path]:
    # QEMU runs as libvirt-qemu: a user's image must sit where that user can reach it.
    path = data_dir() / f"vmdeck-test-images-{secrets.token_hex(3)}"
    path.mkdir(parents=True)
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _sectors(run_in_guest: Callable, vm: str, dev: str) -> int:
    result = run_in_guest(vm, f"cat /sys/block/{dev}/size")
    return int(result.stdout) if result.exit_code == 0 else -1


def test_hot_add_persist_resize_remove(vm_factory: Callable, run_in_guest: Callable, cli: Callable,
                                       host: Host) -> None:
    vm = vm_factory("tiny")
    added = cli("disk", "add", vm, "--size", "1", "--json")
    assert added.returncode == 0, added.stderr
    change = json.loads(added.stdout)
    assert change["key"] == "vdb" and change["live"] and change["persistent"]
    volume = Path(change["source"])
    assert wait_for(lambda: _sectors(run_in_guest, vm, "vdb") == GIB_SECTORS)

    # Data written by the guest survives pulling the plug and a new boot.
    data = secrets.token_hex(16)
    wrote = run_in_guest(vm, f"printf {data} | dd of=/dev/vdb bs=512 conv=sync,fsync 2>/dev/null && sync")
    assert wrote.exit_code == 0, wrote.stderr
    lifecycle.poweroff(host, vm)
    lifecycle.start(host, vm, wait=True, timeout=600)
    read = wait_for(lambda: run_in_guest(vm, "head -c 32 /dev/vdb").stdout.decode())
    assert read == data

    # Live resize: the guest sees 2 GiB at once.
    resized = cli("disk", "resize", vm, "vdb", "2")
    assert resized.returncode == 0, resized.stderr
    assert wait_for(lambda: _sectors(run_in_guest, vm, "vdb") == 2 * GIB_SECTORS)

    # Removal: gone from the guest, and --delete-volume deletes the volume vmdeck created.
    removed = cli("disk", "remove", vm, "vdb", "--delete-volume")
    assert removed.returncode == 0, removed.stderr
    assert wait_for(lambda: "vdb" not in run_in_guest(vm, "ls /sys/block").stdout.decode().split())
    assert not volume.exists()
    owned = json.loads(cli("show", vm, "--json").stdout)["owned_volumes"]
    assert str(volume) not in owned


def test_attach_user_image_and_sata_waits_for_next_boot(vm_factory: Callable, run_in_guest: Callable,
                                                        cli: Callable, host: Host, image_dir: Path) -> None:
    image = image_dir / "mine.img"
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    vm = vm_factory("tiny")
    attached = cli("disk", "attach", vm, image, "--json")
    assert attached.returncode == 0, attached.stderr
    target = json.loads(attached.stdout)["key"]
    assert wait_for(lambda: _sectors(run_in_guest, vm, target) == 64 * 1024 * 1024 // 512)

    # SATA cannot hot-plug: the disk is added to the configuration and `show` marks it pending.
    sata = cli("disk", "add", vm, "--size", "1", "--bus", "sata", "--json")
    assert sata.returncode == 0, sata.stderr
    sata_change = json.loads(sata.stdout)
    assert not sata_change["live"] and "next boot" in sata_change["message"]
    rows = {d["key"]: d["status"] for d in json.loads(cli("show", vm, "--json").stdout)["devices"]}
    assert rows[sata_change["key"]] == "pending add" and rows[target] == "live"
    shown = cli("show", vm)
    assert "pending add" in shown.stdout

    # Removing the user's image never deletes it; --delete-volume on it is refused.
    refused = cli("disk", "remove", vm, target, "--delete-volume")
    assert refused.returncode == 2 and "never deletes" in refused.stderr
    removed = cli("disk", "remove", vm, target)
    assert removed.returncode == 0, removed.stderr
    assert wait_for(lambda: target not in run_in_guest(vm, "ls /sys/block").stdout.decode().split())
    assert image.exists()
    # Deleting the VM deletes the SATA volume vmdeck created for it.
    sata_volume = Path(sata_change["source"])
    assert sata_volume.exists()
    lifecycle.delete(host, vm, force=True)
    assert not sata_volume.exists()

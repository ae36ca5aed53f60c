"""CD/DVD media on a real VM: an ISO made by vmdeck is read back by the guest, live and after a cold insert."""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from itest_support import wait_for

from vmdeck.host.connection import Host
from vmdeck.paths import iso_dir
from vmdeck.vm import lifecycle

MOUNT = "mkdir -p /mnt/cd && mount -t iso9660 -o ro /dev/sr0 /mnt/cd"


@pytest.fixture
def media_dir() -> Iterator[Path]:
    # QEMU runs as libvirt-qemu: the ISO must sit where that user can reach it (not pytest's 0700 tmp).
    path = iso_dir() / f"vmdeck-test-{secrets.token_hex(3)}"
    path.mkdir(parents=True)
    for folder in (iso_dir().parent, iso_dir(), path):
        folder.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _read_cd(run_in_guest: Callable, vm: str) -> str:
    result = run_in_guest(vm, f"{MOUNT} && cat /mnt/cd/payload/secret.txt; umount /mnt/cd")
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode()


def test_insert_eject_live_and_cold(vm_factory: Callable, run_in_guest: Callable, cli: Callable, host: Host,
                                    media_dir: Path) -> None:
    secret = secrets.token_hex(16)
    folder = media_dir / "src"
    (folder / "payload").mkdir(parents=True)
    (folder / "payload" / "secret.txt").write_text(secret)
    iso = media_dir / "files.iso"
    made = cli("iso", "make", folder, "-o", iso)
    assert made.returncode == 0, made.stderr
    vm = vm_factory("tiny")

    # Live insert: the guest mounts the drive and reads the exact bytes.
    inserted = cli("cdrom", "insert", vm, iso, "--json")
    assert inserted.returncode == 0, inserted.stderr
    change = json.loads(inserted.stdout)
    assert change["live"] and change["persistent"] and change["key"] == "sda"
    assert wait_for(lambda: _read_cd(run_in_guest, vm)) == secret

    # Eject: the guest sees an empty drive.
    ejected = cli("cdrom", "eject", vm)
    assert ejected.returncode == 0, ejected.stderr
    # The guest may notice the open tray a moment later on a loaded machine: retried (a mount that still
    # succeeds is undone, so the next try starts clean).
    assert wait_for(lambda: (empty := run_in_guest(vm, f"{MOUNT} && umount /mnt/cd")).exit_code != 0
                    and "No medium" in empty.stderr.decode())
    shown = json.loads(cli("show", vm, "--json").stdout)
    assert [d["source"] for d in shown["devices"] if d["kind"] == "cdrom"] == [None]

    # Cold insert: on a shut-off VM it goes to the configuration, and the guest has it after boot.
    lifecycle.poweroff(host, vm)
    cold = cli("cdrom", "insert", vm, iso)
    assert cold.returncode == 0 and "not running" in cold.stdout
    # A second, empty drive: tiny has virtio-scsi, so it goes there (the cloud kernel has no SATA).
    added = cli("cdrom", "add", vm, "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["key"] == "sdb"
    lifecycle.start(host, vm, wait=True, timeout=600)
    assert wait_for(lambda: _read_cd(run_in_guest, vm)) == secret
    drives = [d for d in json.loads(cli("show", vm, "--json").stdout)["disks"] if d["device"] == "cdrom"]
    assert [(d["target"], d["bus"]) for d in drives] == [("sda", "scsi"), ("sdb", "scsi")]
    # The condition is in the probe: the SCSI scan may add sr1 after the first answer.
    assert wait_for(lambda: run_in_guest(vm, "ls /sys/block").stdout.decode().split().count("sr1") == 1)
    assert iso.exists()  # media are never vmdeck's to delete

    # A disc the guest holds mounted: ejecting is a conflict (exit 4) that leaves the disc in;
    # --force takes it out anyway.
    assert run_in_guest(vm, MOUNT).exit_code == 0
    held = cli("cdrom", "eject", vm, "--drive", "sda")
    assert held.returncode == 4, held.stderr
    assert "locked the tray" in held.stderr
    assert run_in_guest(vm, "cat /mnt/cd/payload/secret.txt").stdout.decode() == secret
    forced = cli("cdrom", "eject", vm, "--drive", "sda", "--force")
    assert forced.returncode == 0, forced.stderr

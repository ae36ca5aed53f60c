"""Files QEMU cannot read: vmdeck names the folder libvirt-qemu cannot enter before libvirt fails
late (exit 2), and --fix-permissions grants search with an ACL so the guest then reads the disc."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faults_support import scratch_dir
from itest_support import wait_for

from vmdeck.host.connection import Host
from vmdeck.storage.pool import POOL_NAME


@pytest.fixture
def private_dir() -> Iterator[Path]:
    # What a user gets from mktemp -d: a 0700 folder owned by root, under a world-searchable /var/tmp.
    path = scratch_dir("vmdeck-test-perm-", 0o700)
    assert path.stat().st_mode & 0o777 == 0o700
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _acl(path: Path) -> str:
    return subprocess.run(["getfacl", "-cp", str(path)], capture_output=True, text=True, check=True).stdout


def _volumes(host: Host, prefix: str) -> set[str]:
    """The pool's volumes named after one VM: the pool is shared with concurrent tests and runs."""
    pool = host.conn.pool(POOL_NAME)
    pool.refresh()
    return {name for name in pool.volume_names() if name.startswith(prefix)}


def test_iso_in_private_folder(vm_factory: Callable, cli: Callable, run_in_guest: Callable, host: Host,
                               private_dir: Path) -> None:
    secret = secrets.token_hex(8)
    (private_dir / "src").mkdir()
    (private_dir / "src" / "secret.txt").write_text(secret)
    iso = private_dir / "my.iso"
    assert cli("iso", "make", private_dir / "src", "-o", iso).returncode == 0
    vm = vm_factory("tiny")

    refused = cli("cdrom", "insert", vm, iso)
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1
    assert f"libvirt-qemu, which cannot enter folder {private_dir} (mode 0700, owner root)" in line
    assert "--fix-permissions" in line
    # Nothing was changed: the drive is still empty, the folder still private.
    assert "my.iso" not in cli("show", vm, "--json").stdout
    assert "libvirt-qemu" not in _acl(private_dir)

    # create --cdrom and disk attach are checked the same way, before any volume exists.
    name = f"{vm}-cd"
    before = _volumes(host, name)
    created = cli("create", name, "-t", "q35-virtio", "--cdrom", iso)
    assert created.returncode == 2 and str(private_dir) in created.stderr, created.stderr
    assert not host.exists(name) and _volumes(host, name) == before
    image = private_dir / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    attached = cli("disk", "attach", vm, image)
    assert attached.returncode == 2 and str(private_dir) in attached.stderr, attached.stderr

    # --fix-permissions: one ACL entry (search only) on the folder; its mode bits stay 0700.
    fixed = cli("cdrom", "insert", vm, iso, "--fix-permissions")
    assert fixed.returncode == 0, fixed.stderr
    assert f"granted libvirt-qemu search on {private_dir} (ACL)" in fixed.stderr
    assert "user:libvirt-qemu:--x" in _acl(private_dir)
    assert private_dir.stat().st_mode & 0o777 == 0o700 or os.getxattr(private_dir, "system.posix_acl_access")
    mount = "mkdir -p /mnt/cd && mount -t iso9660 -o ro /dev/sr0 /mnt/cd && cat /mnt/cd/secret.txt; umount /mnt/cd"
    assert wait_for(lambda: run_in_guest(vm, mount).stdout.decode().strip()) == secret

"""Secure Boot end to end on the windows template under TCG: OVMF with Microsoft's keys enrolled starts
Debian's shim (signed by Microsoft), shim starts Debian's GRUB (signed by Debian), GRUB starts Debian's
signed cloud kernel through shim's verifier, and the kernel reports Secure Boot enabled on its serial
console. The disk is an EFI system partition built here from Debian's packages (shim-signed,
grub-efi-amd64-signed, the signed build of the tiny guest's kernel) and the tiny guest's initramfs."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from itest_support import PREFIX, delete_vm

from vmdeck.host.connection import Host
from vmdeck.images.debian_packages import download, extract
from vmdeck.images.tiny import find_tiny
from vmdeck.paths import data_dir
from vmdeck.spec.models import DiskSpec
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm, serial_log_path

GRUB_CFG = "set timeout=0\nlinux /vmlinuz console=ttyS0 loglevel=7 no_timer_check\ninitrd /initrd.img\nboot\n"


def _mtools(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def esp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tiny = find_tiny("x86_64")
    assert tiny is not None, "the tiny guest image is built by scripts/setup-host.sh"
    kernel_version = json.loads((tiny.kernel.parent / "manifest.json").read_text())["kernel_version"]
    cache = data_dir() / "cache" / "secure-boot"  # kept: the next run downloads nothing
    unpacked = tmp_path_factory.mktemp("sb")
    for package in ("shim-signed", "grub-efi-amd64-signed", f"linux-image-{kernel_version}"):
        extract(download(package, cache), unpacked)
    # QEMU (libvirt-qemu) reads the disk: it sits in a folder it can reach, removed at the end.
    folder = data_dir() / f"vmdeck-test-sb-{uuid.uuid4().hex[:6]}"
    folder.mkdir(mode=0o755)
    image = folder / "esp.img"
    cfg = unpacked / "grub.cfg"
    cfg.write_text(GRUB_CFG)
    _mtools("mkfs.vfat", "-C", str(image), "65536")
    _mtools("mmd", "-i", str(image), "::/EFI", "::/EFI/BOOT", "::/EFI/debian")
    copies = {unpacked / "usr/lib/shim/shimx64.efi.signed": "::/EFI/BOOT/BOOTX64.EFI",  # the removable-media path
              unpacked / "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed": "::/EFI/BOOT/grubx64.efi",
              cfg: "::/EFI/BOOT/grub.cfg", unpacked / f"boot/vmlinuz-{kernel_version}": "::/vmlinuz",
              tiny.initrd: "::/initrd.img"}
    for source, target in copies.items():
        _mtools("mcopy", "-i", str(image), str(source), target)
    _mtools("mcopy", "-i", str(image), str(cfg), "::/EFI/debian/grub.cfg")
    image.chmod(0o644)
    yield image
    shutil.rmtree(folder, ignore_errors=True)


def test_signed_chain_boots_with_secure_boot_enabled(host: Host, esp: Path) -> None:
    name = f"{PREFIX}secureboot-{uuid.uuid4().hex[:6]}"
    spec = resolve("windows", name, Overrides(memory_mib=512))
    spec = spec.model_copy(update={"disks": (DiskSpec(source=esp, format="raw", bus="sata"),), "cdroms": ()})
    try:
        create_vm(host, spec)
        lifecycle.start(host, name)
        log = serial_log_path(name)
        deadline = time.monotonic() + 900  # OVMF, shim, GRUB and a kernel under TCG on a loaded host
        text = ""
        while time.monotonic() < deadline and "secureboot: Secure boot enabled" not in text:
            time.sleep(2)
            text = log.read_text(errors="replace") if log.exists() else ""
        assert "secureboot: Secure boot enabled" in text, text[-3000:]
        assert "EFI stub: UEFI Secure Boot is enabled" in text
        assert "Kernel is locked down from EFI Secure Boot" in text
    finally:
        delete_vm(host, name)
    assert esp.exists()  # the disk was the test's own file, never the VM's: the delete left it

"""Assemble a bootable GPT disk image from a root folder, without mounting anything (images layer).

Layout (512-byte sectors) of the x86_64 disk:

    LBA 0            protective MBR carrying GRUB's boot.img (BIOS boots from here)
    p1  1 MiB        BIOS boot partition: GRUB's core.img (i386-pc)
    p2  64 MiB       EFI system partition (FAT): EFI/BOOT/BOOTX64.EFI (x86_64-efi GRUB, "removable" path)
    p3  the rest     ext4 root, label `vmdeck-root`, last so that growpart can grow it

The aarch64 disk is UEFI only (AAVMF has no BIOS): no BIOS boot partition and no
boot.img, the ESP (p1) carries EFI/BOOT/BOOTAA64.EFI and the root is p2. A
`BootPlan` says which of these a disk gets.

Every GRUB is built with grub-mkimage with every module it needs inside and a
tiny embedded config that finds the root filesystem by label and reads the one
/boot/grub/grub.cfg there, so no `grub-install` (which wants a mounted disk with
partition device nodes, absent here without udev) is needed. grub-mkimage builds
for any GRUB platform from that platform's module folder, so the host's x86
grub-mkimage makes the arm64 GRUB from the modules of the guest's own
grub-efi-arm64-bin package. The BIOS half does what grub-bios-setup does:
boot.img goes into the MBR's code area with the sector of core.img patched in,
and core.img's first sector gets the block list of the rest of itself.
Filesystems are made from folders (`mkfs.ext4 -d`, mtools for FAT) and copied
into place at their offsets.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmdeck.errors import HostError

__all__ = ["ROOT_LABEL", "BootPlan", "BIOS_AND_UEFI_X86_64", "UEFI_ARM64", "DiskLayout", "plan_layout", "grub_cfg",
           "sfdisk_script", "assemble_disk", "patch_boot_img"]

Progress = Callable[[str], None]
SECTOR = 512
MIB = 1024 * 1024
ROOT_LABEL = "vmdeck-root"
ESP_LABEL = "VMDECK-ESP"

BIOS_BOOT_TYPE = "21686148-6449-6E6F-744E-656564454649"
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_FS_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

# GRUB's boot.img (include/grub/i386/pc/boot.h): where grub-bios-setup patches it.
_BPB_START, _BPB_END = 0x03, 0x5A
_KERNEL_SECTOR = 0x5C  # u64: LBA of core.img's first sector
_DRIVE_CHECK = 0x66  # a jmp replaced by two NOPs for hard disks (buggy-BIOS workaround)
_MBR_CODE_END = 0x1B8  # disk signature and partition table follow: keep them
_BLOCKLIST_SIZE = 12  # core.img sector 0 ends with {u64 start, u16 len, u16 segment}

_COMMON_MODULES = ["part_gpt", "part_msdos", "ext2", "fat", "search", "search_label", "search_fs_uuid",
                   "normal", "linux", "configfile", "echo", "test", "gzio", "ls", "cat", "boot", "serial",
                   "terminal", "sleep", "reboot", "halt"]
_MODULES = {"i386-pc": ["biosdisk", *_COMMON_MODULES],
            "x86_64-efi": ["efi_gop", "efi_uga", "all_video", *_COMMON_MODULES],
            # No efi_uga on arm64: UGA is an old x86-only EFI graphics protocol.
            "arm64-efi": ["efi_gop", "all_video", *_COMMON_MODULES]}
# The Debian package with each platform's GRUB modules (named in the error when they are missing).
_MODULE_PACKAGES = {"i386-pc": "grub-pc-bin", "x86_64-efi": "grub-efi-amd64-bin", "arm64-efi": "grub-efi-arm64-bin"}


@dataclass(frozen=True)
class BootPlan:
    """How a disk boots: which GRUB goes on the ESP's removable-media path, and whether BIOS boots it too."""

    efi_format: str  # grub-mkimage's platform: x86_64-efi, arm64-efi
    efi_file: str  # EFI/BOOT/<this>: the removable-media path every UEFI firmware tries
    bios: bool  # also GRUB for BIOS (i386-pc): boot.img in the MBR, core.img in a BIOS boot partition
    # Where the EFI GRUB's modules come from: the host's /usr/lib/grub (False) or the root folder's
    # own grub package (True: a foreign architecture's GRUB is not installable on the host).
    modules_in_root: bool = False
    # GRUB's ns8250 serial driver exists on x86 only; on arm64 the EFI console already reaches both
    # the serial port and the screen (AAVMF's ConOut), so grub.cfg leaves the terminals alone.
    grub_serial: bool = True

    def module_dir(self, fmt: str, root: Path) -> Path:
        base = root / "usr/lib/grub" if self.modules_in_root and fmt == self.efi_format else Path("/usr/lib/grub")
        return base / fmt


BIOS_AND_UEFI_X86_64 = BootPlan(efi_format="x86_64-efi", efi_file="BOOTX64.EFI", bios=True)
UEFI_ARM64 = BootPlan(efi_format="arm64-efi", efi_file="BOOTAA64.EFI", bios=False, modules_in_root=True,
                      grub_serial=False)


@dataclass(frozen=True)
class DiskLayout:
    bios_start: int  # sectors
    bios_sectors: int  # 0: no BIOS boot partition (a UEFI-only disk)
    esp_start: int
    esp_sectors: int
    root_start: int
    root_sectors: int
    total_sectors: int


def plan_layout(root_bytes: int, esp_mib: int = 64, *, bios: bool = True) -> DiskLayout:
    """Partition geometry for a root filesystem of root_bytes (rounded up to MiB); `bios=False`
    leaves out the BIOS boot partition and the ESP starts at 1 MiB."""
    per_mib = MIB // SECTOR
    root_mib = -(-root_bytes // MIB)
    bios_start = 1 * per_mib
    bios_sectors = 1 * per_mib if bios else 0
    esp_start, esp = bios_start + bios_sectors, esp_mib * per_mib
    root_start, root = esp_start + esp, root_mib * per_mib
    total = root_start + root + per_mib  # 1 MiB at the end for the backup GPT
    return DiskLayout(bios_start, bios_sectors, esp_start, esp, root_start, root, total)


def grub_cfg(cmdline: str, timeout: int = 1, *, serial: bool = True, kernel: str = "/vmlinuz",
             initrd: str = "/initrd.img") -> str:
    """The one grub.cfg every GRUB of the disk reads. /vmlinuz and /initrd.img are the symlinks
    Debian's kernel packages keep up to date, so a kernel upgrade inside the guest keeps booting."""
    terminals = ("serial --unit=0 --speed=115200\n"
                 "terminal_input console serial\n"
                 "terminal_output console serial\n") if serial else ""
    return (
        "# written by vmdeck image build: read by every GRUB of this disk (BIOS and UEFI alike)\n"
        f"{terminals}"
        f"set timeout={timeout}\n"
        "set default=0\n"
        "menuentry 'Debian GNU/Linux 12' {\n"
        f"    search --no-floppy --label --set=root {ROOT_LABEL}\n"
        f"    linux {kernel} root=LABEL={ROOT_LABEL} ro {cmdline}\n"
        f"    initrd {initrd}\n"
        "}\n"
    )


def _embedded_cfg() -> str:
    return (f"search --no-floppy --label --set=root {ROOT_LABEL}\n"
            "set prefix=($root)/boot/grub\n")


def _run(argv: list[str], timeout: float = 900) -> str:
    if shutil.which(argv[0]) is None:
        raise HostError(f"'{argv[0]}' is not installed on this host (needed to build disk images)")
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "LC_ALL": "C"}, check=False)
    except subprocess.TimeoutExpired:
        raise HostError(f"{argv[0]} timed out after {timeout:.0f} s") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise HostError(f"{argv[0]} failed: {lines[-1] if lines else f'exit status {result.returncode}'}")
    return result.stdout


def _grub_image(fmt: str, out: Path, work: Path, moddir: Path) -> None:
    if not moddir.is_dir():
        raise HostError(f"GRUB modules for {fmt} are missing from {moddir.parent}: "
                        f"install the Debian package {_MODULE_PACKAGES[fmt]}")
    cfg = work / f"embed-{fmt}.cfg"
    cfg.write_text(_embedded_cfg())
    _run(["grub-mkimage", "-O", fmt, "-d", str(moddir), "-c", str(cfg), "-p", "/boot/grub",
          "-o", str(out), *_MODULES[fmt]])


def patch_boot_img(boot_img: bytes, mbr: bytes, core_lba: int) -> bytes:
    """The MBR with GRUB's boot.img code in it, pointing at core.img (what grub-bios-setup writes)."""
    if len(boot_img) != SECTOR or len(mbr) != SECTOR:
        raise HostError("boot.img and the MBR must both be one 512-byte sector")
    code = bytearray(boot_img)
    code[_BPB_START:_BPB_END] = mbr[_BPB_START:_BPB_END]
    struct.pack_into("<Q", code, _KERNEL_SECTOR, core_lba)
    code[_DRIVE_CHECK:_DRIVE_CHECK + 2] = b"\x90\x90"
    return bytes(code[:_MBR_CODE_END]) + mbr[_MBR_CODE_END:]


def _patch_core_img(core: bytes, core_lba: int) -> bytes:
    """core.img's first sector (diskboot.img) loads the rest from a block list: fill in where it is."""
    sectors = -(-len(core) // SECTOR)
    data = bytearray(core)
    start, length, segment = struct.unpack_from("<QHH", data, SECTOR - _BLOCKLIST_SIZE)
    if length != sectors - 1:
        raise HostError(f"unexpected core.img block list (length {length}, image {sectors} sectors)")
    struct.pack_into("<Q", data, SECTOR - _BLOCKLIST_SIZE, core_lba + 1)
    return bytes(data)


def _copy_into(dest: Path, src: Path, offset_bytes: int) -> None:
    """Copy src into dest at offset, skipping all-zero blocks so dest stays sparse."""
    block = 4 * MIB
    zero = bytes(block)
    with open(src, "rb") as fin, open(dest, "r+b") as fout:
        pos = offset_bytes
        while chunk := fin.read(block):
            if chunk != zero[: len(chunk)]:
                fout.seek(pos)
                fout.write(chunk)
            pos += len(chunk)


def sfdisk_script(layout: DiskLayout) -> str:
    bios = (f"start={layout.bios_start}, size={layout.bios_sectors}, type={BIOS_BOOT_TYPE}, name=bios-boot\n"
            if layout.bios_sectors else "")
    return (
        "label: gpt\n"
        f"{bios}"
        f"start={layout.esp_start}, size={layout.esp_sectors}, type={ESP_TYPE}, name=esp\n"
        f"start={layout.root_start}, size={layout.root_sectors}, type={LINUX_FS_TYPE}, name=root\n"
    )


def assemble_disk(root: Path, out_raw: Path, root_bytes: int, progress: Progress,
                  boot: BootPlan = BIOS_AND_UEFI_X86_64) -> DiskLayout:
    """Write a raw GPT disk at out_raw from the folder root, bootable as `boot` says."""
    layout = plan_layout(root_bytes, bios=boot.bios)
    with tempfile.TemporaryDirectory(prefix="disk-", dir=out_raw.parent) as tmp:
        work = Path(tmp)
        progress(f"building GRUB for {'BIOS (i386-pc) and ' if boot.bios else ''}UEFI ({boot.efi_format})")
        core = b""
        if boot.bios:
            _grub_image("i386-pc", work / "core.img", work, boot.module_dir("i386-pc", root))
            core = (work / "core.img").read_bytes()
            if len(core) > layout.bios_sectors * SECTOR:
                raise HostError(f"GRUB core.img ({len(core)} bytes) does not fit the BIOS boot partition")
        _grub_image(boot.efi_format, work / boot.efi_file, work, boot.module_dir(boot.efi_format, root))

        progress(f"making the ext4 root filesystem from the folder ({layout.root_sectors // 2048} MiB)")
        root_img = work / "root.ext4"
        _run(["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-d", str(root), "-E", "lazy_itable_init=1",
              str(root_img), f"{layout.root_sectors * SECTOR // 1024}k"])

        progress(f"making the EFI system partition (FAT) with EFI/BOOT/{boot.efi_file}")
        esp_img = work / "esp.fat"
        _run(["mkfs.vfat", "-n", ESP_LABEL, "-C", str(esp_img), str(layout.esp_sectors * SECTOR // 1024)])
        env_img = f"{esp_img}"
        _run(["mmd", "-i", env_img, "::/EFI", "::/EFI/BOOT"])
        _run(["mcopy", "-i", env_img, str(work / boot.efi_file), f"::/EFI/BOOT/{boot.efi_file}"])

        progress("writing the GPT partition table and placing the partitions")
        with open(out_raw, "wb") as f:
            f.truncate(layout.total_sectors * SECTOR)
        script = sfdisk_script(layout)
        try:
            subprocess.run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(out_raw)],
                           input=script, capture_output=True, text=True, check=True, timeout=120)
        except FileNotFoundError:
            raise HostError("sfdisk is not installed (Debian package fdisk)") from None
        except subprocess.CalledProcessError as err:
            raise HostError(f"sfdisk failed: {err.stderr.strip().splitlines()[-1:]}") from None
        _copy_into(out_raw, esp_img, layout.esp_start * SECTOR)
        _copy_into(out_raw, root_img, layout.root_start * SECTOR)
        if not boot.bios:
            return layout
        boot_img = (boot.module_dir("i386-pc", root) / "boot.img").read_bytes()
        with open(out_raw, "r+b") as f:
            mbr = f.read(SECTOR)
            f.seek(0)
            f.write(patch_boot_img(boot_img, mbr, layout.bios_start))
            f.seek(layout.bios_start * SECTOR)
            f.write(_patch_core_img(core, layout.bios_start))
    return layout

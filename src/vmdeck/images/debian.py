"""`vmdeck image build debian-12 [--arch aarch64]`: a Debian 12 cloud disk image built from Debian's archive
(images layer).

Only Debian's packages go in, never a downloaded prebuilt image: mmdebstrap
installs the cloud kernel, systemd, cloud-init, the QEMU guest agent and
OpenSSH into a folder (the .debs are kept in a cache folder reused by the next
build), vmdeck then prepares the folder as a cloud image (no root password, no
SSH host keys, an empty machine-id, NoCloud first), and diskimage.py turns it
into a GPT disk: BIOS and UEFI for x86_64 (`debian-12`), UEFI for aarch64
(`debian-12-arm64`, GRUB from the guest's own grub-efi-arm64-bin). An arm64
folder is made on an x86 host through qemu-user (binfmt.py checks the host can).
The result is compressed to qcow2 in the image library with its record (library.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vmdeck.errors import HostError, InvalidInput, NotFound
from vmdeck.paths import data_dir

from .binfmt import check_can_run
from .diskimage import BIOS_AND_UEFI_X86_64, MIB, ROOT_LABEL, UEFI_ARM64, BootPlan, assemble_disk, grub_cfg
from .library import ImageRecord, find_image, library_dir, write_record

__all__ = ["BUILDABLE", "PACKAGES", "TARGETS", "DebianTarget", "build_plan", "check_build_host", "mmdebstrap_argv",
           "build_image", "KERNEL_CMDLINE"]

Progress = Callable[[str], None]
BUILDER_VERSION = 3  # 2: /etc/.updated, manage_etc_hosts, C.UTF-8, no RSA host key; 3: no_timer_check
SUITE = "bookworm"
# The release, its updates and its security archive: a fresh build has the current kernel and fixes.
SOURCES = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
_COMMON_PACKAGES = (
    "systemd-sysv", "udev", "dbus", "cloud-init", "qemu-guest-agent",
    "openssh-server", "ifupdown", "isc-dhcp-client", "cloud-guest-utils", "e2fsprogs", "sudo",
    "netbase", "ca-certificates", "less", "procps", "iproute2",
)
# no_timer_check: a TCG guest starved by a busy host can fail the IO-APIC timer test and panic.
KERNEL_CMDLINE = "console=tty0 console=ttyS0,115200n8 no_timer_check"
# The aarch64 'virt' machine's serial port is a PL011 (ttyAMA0); the IO-APIC check is x86 only.
KERNEL_CMDLINE_ARM64 = "console=tty0 console=ttyAMA0,115200n8"
IMAGE_BYTES = 2048 * MIB  # the disk's virtual size unless the root folder needs more


@dataclass(frozen=True)
class DebianTarget:
    """What a Debian image build differs in per architecture."""

    arch: str  # vmdeck's (and libvirt's) name: the image record's arch, the VM's
    debian_arch: str  # Debian's name: mmdebstrap --architectures, the package cache's folder
    image_name: str  # its name in the library
    kernel_package: str
    # Installed in the guest for its boot loader: a foreign architecture's GRUB modules cannot be
    # installed on the host (grub-efi-arm64-bin is built for arm64 only), the guest's own can be read.
    boot_packages: tuple[str, ...]
    cmdline: str
    boot: BootPlan

    @property
    def packages(self) -> tuple[str, ...]:
        return (self.kernel_package, *_COMMON_PACKAGES, *self.boot_packages)


TARGETS = {
    "x86_64": DebianTarget(arch="x86_64", debian_arch="amd64", image_name="debian-12",
                           kernel_package="linux-image-cloud-amd64", boot_packages=(), cmdline=KERNEL_CMDLINE,
                           boot=BIOS_AND_UEFI_X86_64),
    "aarch64": DebianTarget(arch="aarch64", debian_arch="arm64", image_name="debian-12-arm64",
                            kernel_package="linux-image-cloud-arm64", boot_packages=("grub-efi-arm64-bin",),
                            cmdline=KERNEL_CMDLINE_ARM64, boot=UEFI_ARM64),
}
BUILDABLE = {"debian-12": tuple(TARGETS)}
PACKAGES = TARGETS["x86_64"].packages  # the x86_64 image's (bench/bench_images.py runs the same mmdebstrap)
# Host tools the build runs, and the Debian package of each: checked before a long mmdebstrap starts.
_HOST_TOOLS = {"mmdebstrap": "mmdebstrap", "grub-mkimage": "grub-common", "sfdisk": "fdisk",
               "mkfs.ext4": "e2fsprogs", "mkfs.vfat": "dosfstools", "mmd": "mtools", "mcopy": "mtools",
               "qemu-img": "qemu-utils"}


def build_plan(name: str, arch: str = "x86_64") -> DebianTarget:
    """The target `vmdeck image build NAME --arch ARCH` builds, or the error for a name or arch it cannot."""
    if name not in BUILDABLE:
        other = next((t for t in TARGETS.values() if t.image_name == name and t.arch != "x86_64"), None)
        hint = f"; {name} is built by: vmdeck image build debian-12 --arch {other.arch}" if other else ""
        raise NotFound(f"vmdeck cannot build an image named {name!r} (it builds: tiny, {', '.join(BUILDABLE)})"
                       + hint)
    if arch not in BUILDABLE[name]:
        raise InvalidInput(f"{name} is built for {', '.join(BUILDABLE[name])} only, not {arch}", field="arch")
    return TARGETS[arch]


def check_build_host(target: DebianTarget, host_arch: str | None = None) -> None:
    """HostError in one line if this host lacks what building `target` needs (before any long step)."""
    missing = sorted({f"{tool} ({package})" for tool, package in _HOST_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise HostError(f"the image build needs {', '.join(missing)}: install the Debian package(s) "
                        "(scripts/setup-host.sh does)")
    if target.arch != (host_arch or platform.machine()):
        check_can_run(target.arch)


def _cache_dir(target: DebianTarget) -> Path:
    return data_dir() / "cache" / f"mmdebstrap-{SUITE}-{target.debian_arch}"


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    folder = library_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _cached(target: DebianTarget) -> ImageRecord | None:
    record = find_image(target.image_name)
    if (record is None or record.arch != target.arch
            or not record.origin.startswith(f"built v{BUILDER_VERSION}")):
        return None
    return record


def build_image(name: str, arch: str = "x86_64", *, progress: Progress | None = None,
                force: bool = False) -> ImageRecord:
    """Build (or return the cached) image `name` for `arch` into the library, as `build_plan` names it
    (debian-12 for x86_64, debian-12-arm64 for aarch64)."""
    say: Progress = progress or (lambda _m: None)
    target = build_plan(name, arch)
    image = target.image_name
    if not force and (record := _cached(target)) is not None:
        say(f"using cached image {record.path}")
        return record
    check_build_host(target)
    with _lock(image):
        if not force and (record := _cached(target)) is not None:
            return record
        started = time.monotonic()
        folder = library_dir()
        for stale in folder.glob(f".{image}-build-*"):  # a build killed before it could clean up
            _remove_build_dir(stale)
        tmp = Path(tempfile.mkdtemp(prefix=f".{image}-build-", dir=folder))
        try:
            record = _build(target, tmp, say)
        finally:
            _remove_build_dir(tmp)
        say(f"{image} ready in {time.monotonic() - started:.0f} s: {record.path} "
            f"({Path(record.path).stat().st_size / MIB:.0f} MiB on disk)")
        return record


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    # /proc/mounts escapes spaces as \040; build folders have none.
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _remove_build_dir(path: Path) -> None:
    """Delete a build folder, first unmounting what a killed mmdebstrap may have left mounted in its
    chroot (/proc, /sys, /dev/pts): removing through a live mount would reach into the host's."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=60, check=False)
    if _mounts_under(path):
        raise HostError(f"{path} still has mounts inside: unmount them, then delete it")
    shutil.rmtree(path, ignore_errors=True)


def mmdebstrap_argv(target: DebianTarget, root: Path, cache: Path) -> list[str]:
    """mmdebstrap's arguments for `target` into the folder `root`, with the package cache `cache`.
    A foreign --architectures makes mmdebstrap run the guest's programs through qemu-user."""
    # The documented mmdebstrap recipe for a package cache kept between builds: sync the .debs
    # in before apt runs and back out after, and keep apt from emptying its archive folder.
    return [
        "mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
        f"--architectures={target.debian_arch}",
        f"--include={','.join(target.packages)}",
        "--aptopt=Acquire::Retries \"3\"",
        "--skip=download/empty", "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
        f"--setup-hook=sync-in {cache} /var/cache/apt/archives/",
        # Mask timers that would compete with the first boot for the CPU (a TCG guest has little).
        '--customize-hook=chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer',
        f"--customize-hook=sync-out /var/cache/apt/archives {cache}",
        '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb',
        SUITE, str(root), *SOURCES,
    ]


def _mmdebstrap(target: DebianTarget, root: Path, say: Progress) -> None:
    cache = _cache_dir(target)
    cache.mkdir(parents=True, exist_ok=True)
    if shutil.which("mmdebstrap") is None:
        raise HostError("mmdebstrap is not installed (Debian package mmdebstrap)")
    argv = mmdebstrap_argv(target, root, cache)
    emulated = " through qemu-user" if target.arch != platform.machine() else ""
    say(f"mmdebstrap {SUITE} {target.debian_arch}{emulated}: {len(target.packages)} packages and their "
        f"dependencies (package cache {cache})")
    env = {**os.environ, "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stderr is not None
        tail: list[str] = []
        for line in proc.stderr:
            line = line.rstrip()
            if not line:
                continue
            tail = [*tail[-20:], line]
            if line.startswith(("I: ", "E: ")):
                say(line[3:])
        rc = proc.wait()
    if rc != 0:
        errors = [t for t in tail if t.startswith("E:")] or tail[-1:]
        raise HostError(f"mmdebstrap failed: {errors[-1] if errors else f'exit status {rc}'}")


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _kernel_links(root: Path) -> tuple[str, str]:
    """Where the kernel packages keep their /vmlinuz and /initrd.img symlinks: in / by default,
    in /boot when kernel-img.conf says link_in_boot (each architecture's default may differ)."""
    for folder in ("/", "/boot/"):
        if (root / folder.lstrip("/") / "vmlinuz").exists() and (root / folder.lstrip("/") / "initrd.img").exists():
            return f"{folder}vmlinuz", f"{folder}initrd.img"
    raise HostError("the Debian kernel did not install a kernel and initramfs with their vmlinuz and "
                    "initrd.img symlinks")


def prepare_root(root: Path, target: DebianTarget = TARGETS["x86_64"]) -> str:
    """Make the installed folder a cloud image; returns the kernel version."""
    kernels = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise HostError("the Debian kernel did not install a kernel into /boot")
    kernel_link, initrd_link = _kernel_links(root)
    # No SSH host keys baked in: cloud-init creates them on first boot (and ssh-keygen -A before
    # sshd starts is the fallback when cloud-init is switched off).
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    # Only when there is no host key at all: `ssh-keygen -A` would add a (slow) RSA key to
    # cloud-init's ed25519 and ECDSA ones.
    _write(root / "etc/systemd/system/ssh.service.d/vmdeck-host-keys.conf",
           "[Service]\nExecStartPre=/bin/sh -c 'ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 || "
           "/usr/bin/ssh-keygen -A'\n")
    # An empty machine-id: systemd makes a new one on each clone's first boot.
    _write(root / "etc/machine-id", "")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # root has no password ('*' from the base system); make sure nobody gave it one.
    shadow = root / "etc/shadow"
    lines = shadow.read_text().splitlines()
    fixed = [":".join([f[0], "*", *f[2:]]) if (f := ln.split(":"))[0] == "root" else ln for ln in lines]
    shadow.write_text("\n".join(fixed) + "\n")
    _write(root / "etc/fstab",
           f"LABEL={ROOT_LABEL} / ext4 rw,discard,errors=remount-ro 0 1\n"
           "LABEL=VMDECK-ESP /boot/efi vfat umask=0077,nofail 0 1\n")
    (root / "boot/efi").mkdir(parents=True, exist_ok=True)
    _write(root / "etc/hostname", "debian\n")
    _write(root / "etc/network/interfaces", "# cloud-init writes /etc/network/interfaces.d/50-cloud-init\n"
           "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n")
    _write(root / "etc/cloud/cloud.cfg.d/90-vmdeck.cfg",
           "# vmdeck: look for a NoCloud seed (a disk labelled cidata) only, so boot does not\n"
           "# wait for cloud metadata services that are not there.\n"
           "datasource_list: [NoCloud, None]\n"
           "# The hostname resolves (sudo asks), without a locales package to generate anything,\n"
           "# and only the fast host key types: RSA key generation takes long on an emulated CPU.\n"
           "manage_etc_hosts: true\n"
           "locale: C.UTF-8\n"
           "ssh_genkeytypes: [ed25519, ecdsa]\n")
    _write(root / "boot/grub/grub.cfg", grub_cfg(target.cmdline, serial=target.boot.grub_serial,
                                                   kernel=kernel_link, initrd=initrd_link))
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(root / "var/lib/apt/lists")
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    for log in (root / "var/log").rglob("*"):
        if log.is_file():
            log.write_bytes(b"")
    _mark_updated(root)
    return kernels[-1]


def _mark_updated(root: Path) -> None:
    """Write /etc/.updated and /var/.updated as systemd-update-done would. Without them the first boot
    runs every ConditionNeedsUpdate unit (hwdb rebuild, ldconfig, ...) before udev starts: minutes
    under TCG, long enough for device units such as /dev/ttyS0 to time out."""
    stamp = (root / "usr").stat().st_mtime_ns
    for folder in (root / "etc", root / "var"):
        marker = folder / ".updated"
        marker.write_text("# This file was created by vmdeck image build (as systemd-update-done does): it holds\n"
                          "# the time /usr was last updated. See man:systemd-update-done.service(8).\n"
                          f"TIMESTAMP_NSEC={stamp}\n")
        os.utime(marker, ns=(stamp, stamp))


def _folder_bytes(root: Path) -> int:
    out = subprocess.run(["du", "-sxk", str(root)], capture_output=True, text=True, timeout=300, check=True)
    return int(out.stdout.split()[0]) * 1024


def _build(target: DebianTarget, tmp: Path, say: Progress) -> ImageRecord:
    name = target.image_name
    root = tmp / "root"
    _mmdebstrap(target, root, say)
    say("preparing the folder as a cloud image (no host keys, no root password, empty machine-id)")
    kernel = prepare_root(root, target)
    used = _folder_bytes(root)
    # 2 GiB disk by default: the root filesystem takes what the partitions before it leave
    # (1 MiB before them, the BIOS boot partition if any, the 64 MiB ESP, 1 MiB for the backup GPT).
    before = 66 * MIB + (MIB if target.boot.bios else 0)
    root_bytes = max(IMAGE_BYTES - before, used * 3 // 2 + 256 * MIB)
    raw = tmp / "disk.raw"
    assemble_disk(root, raw, root_bytes, say, target.boot)
    _remove_build_dir(root)
    out = library_dir() / f"{name}.qcow2"
    partial = library_dir() / f".{name}.qcow2.partial"
    say("converting to compressed qcow2 (qemu-img convert -c)")
    try:
        subprocess.run(["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(partial)],
                       check=True, capture_output=True, text=True, timeout=1800)
    except subprocess.CalledProcessError as err:
        raise HostError(f"qemu-img convert failed: {err.stderr.strip()}") from None
    partial.chmod(0o644)
    os.replace(partial, out)
    return write_record(ImageRecord(
        name=name, os="debian", os_version="12", arch=target.arch, format="qcow2",
        virtual_size=raw.stat().st_size, path=str(out),
        origin=f"built v{BUILDER_VERSION} by vmdeck from Debian {SUITE} {target.debian_arch} packages, kernel {kernel}",
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))

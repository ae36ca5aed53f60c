"""`vmdeck image build debian-12`: a Debian 12 cloud disk image built from Debian's archive (images layer).

Only Debian's packages go in, never a downloaded prebuilt image: mmdebstrap
installs the cloud kernel, systemd, cloud-init, the QEMU guest agent and
OpenSSH into a folder (the .debs are kept in a cache folder reused by the next
build), vmdeck then prepares the folder as a cloud image (no root password, no
SSH host keys, an empty machine-id, NoCloud first), and diskimage.py turns it
into a GPT disk that boots with BIOS and UEFI. The result is compressed to
qcow2 in the image library with its record (library.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from vmdeck.errors import HostError, InvalidInput, NotFound
from vmdeck.paths import data_dir

from .diskimage import MIB, ROOT_LABEL, assemble_disk, grub_cfg
from .library import ImageRecord, find_image, library_dir, write_record

__all__ = ["BUILDABLE", "PACKAGES", "build_image", "KERNEL_CMDLINE"]

Progress = Callable[[str], None]
BUILDER_VERSION = 3  # 2: /etc/.updated, manage_etc_hosts, C.UTF-8, no RSA host key; 3: no_timer_check
SUITE = "bookworm"
# The release, its updates and its security archive: a fresh build has the current kernel and fixes.
SOURCES = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
BUILDABLE = {"debian-12": ("x86_64",)}
PACKAGES = (
    "linux-image-cloud-amd64", "systemd-sysv", "udev", "dbus", "cloud-init", "qemu-guest-agent",
    "openssh-server", "ifupdown", "isc-dhcp-client", "cloud-guest-utils", "e2fsprogs", "sudo",
    "netbase", "ca-certificates", "less", "procps", "iproute2",
)
# no_timer_check: a TCG guest starved by a busy host can fail the IO-APIC timer test and panic.
KERNEL_CMDLINE = "console=tty0 console=ttyS0,115200n8 no_timer_check"
IMAGE_BYTES = 2048 * MIB  # the disk's virtual size unless the root folder needs more


def _cache_dir() -> Path:
    return data_dir() / "cache" / f"mmdebstrap-{SUITE}-amd64"


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


def _cached(name: str) -> ImageRecord | None:
    record = find_image(name)
    if record is None or not record.origin.startswith(f"built v{BUILDER_VERSION}"):
        return None
    return record


def build_image(name: str, arch: str = "x86_64", *, progress: Progress | None = None,
                force: bool = False) -> ImageRecord:
    """Build (or return the cached) image `name` into the library."""
    say: Progress = progress or (lambda _m: None)
    if name not in BUILDABLE:
        raise NotFound(f"vmdeck cannot build an image named {name!r} (it builds: tiny, {', '.join(BUILDABLE)})")
    if arch not in BUILDABLE[name]:
        raise InvalidInput(f"{name} is built for {', '.join(BUILDABLE[name])} only, not {arch}", field="arch")
    if not force and (record := _cached(name)) is not None:
        say(f"using cached image {record.path}")
        return record
    with _lock(name):
        if not force and (record := _cached(name)) is not None:
            return record
        started = time.monotonic()
        folder = library_dir()
        for stale in folder.glob(f".{name}-build-*"):  # a build killed before it could clean up
            _remove_build_dir(stale)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-build-", dir=folder))
        try:
            record = _build(name, arch, tmp, say)
        finally:
            _remove_build_dir(tmp)
        say(f"{name} ready in {time.monotonic() - started:.0f} s: {record.path} "
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


def _mmdebstrap(root: Path, say: Progress) -> None:
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if shutil.which("mmdebstrap") is None:
        raise HostError("mmdebstrap is not installed (Debian package mmdebstrap)")
    # The documented mmdebstrap recipe for a package cache kept between builds: sync the .debs
    # in before apt runs and back out after, and keep apt from emptying its archive folder.
    argv = [
        "mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
        f"--include={','.join(PACKAGES)}",
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
    say(f"mmdebstrap {SUITE}: {len(PACKAGES)} packages and their dependencies (package cache {cache})")
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


def prepare_root(root: Path) -> str:
    """Make the installed folder a cloud image; returns the kernel version."""
    kernels = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if not kernels or not (root / "vmlinuz").exists() or not (root / "initrd.img").exists():
        raise HostError("the Debian kernel did not install a kernel and initramfs into /boot")
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
    _write(root / "boot/grub/grub.cfg", grub_cfg(KERNEL_CMDLINE))
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


def _build(name: str, arch: str, tmp: Path, say: Progress) -> ImageRecord:
    root = tmp / "root"
    _mmdebstrap(root, say)
    say("preparing the folder as a cloud image (no host keys, no root password, empty machine-id)")
    kernel = prepare_root(root)
    used = _folder_bytes(root)
    # 2 GiB disk by default: the root filesystem takes what the partitions before it leave.
    root_bytes = max(IMAGE_BYTES - 67 * MIB, used * 3 // 2 + 256 * MIB)
    raw = tmp / "disk.raw"
    assemble_disk(root, raw, root_bytes, say)
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
        name=name, os="debian", os_version="12", arch=arch, format="qcow2",
        virtual_size=raw.stat().st_size, path=str(out),
        origin=f"built v{BUILDER_VERSION} by vmdeck from Debian {SUITE} packages, kernel {kernel}",
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))

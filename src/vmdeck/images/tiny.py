"""The offline "tiny" guest: a Debian cloud kernel plus a busybox initramfs.

Built from distribution packages only (apt-get download + dpkg-deb -x, never
installed on the host). The guest boots straight into busybox init, loads
the virtio/SCSI/ATA/CD-ROM/input modules, takes a DHCP lease on eth0, runs
the QEMU guest agent on the org.qemu.guest_agent.0 port, powers off on the
ACPI (or arm64 virt GPIO) power button, reboots on Ctrl+Alt+Del, and prints
"VMDECK-BOOT-ID <id>" then "VMDECK-READY" on the serial console.

Layout of image_dir(arch): vmlinuz, initrd.img, manifest.json (written last:
an image without a manifest is incomplete and find_tiny() ignores it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vmdeck.errors import HostError, InvalidInput
from vmdeck.paths import data_dir

from . import cpio, elf, kmods
from . import debian_packages as deb
from .guest import READY_MARKER, guest_files

__all__ = ["GuestImage", "ARCHES", "image_dir", "find_tiny", "build_tiny", "READY_MARKER"]

BUILDER_VERSION = 2  # 2: /etc/os-release
Progress = Callable[[str], None]


@dataclass(frozen=True)
class GuestImage:
    arch: str  # "x86_64" | "aarch64"
    kernel: Path  # vmlinuz
    initrd: Path  # initrd.img (cpio.gz)
    cmdline: str  # kernel command line to boot it with
    ready_marker: str  # line printed on the serial console when the guest is ready
    kernel_version: str


@dataclass(frozen=True)
class ArchProfile:
    arch: str
    debarch: str
    triplet: str
    serial: str
    cmdline: str
    vga: bool
    modules: tuple[str, ...]  # loaded at boot when this kernel has them as modules
    required: tuple[str, ...]  # the build fails when one of these is missing
    extra_tools: tuple[tuple[str, str], ...] = ()  # (package, path inside it) copied with libs


_COMMON_MODULES = (
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_balloon",
    "virtio_input",
    "virtio_scsi",
    "virtio_rng",
    "scsi_mod",
    "sd_mod",
    "sr_mod",
    "cdrom",
    "isofs",
    "vfat",
    "ata_piix",
    "ata_generic",
    "libata",
    "pata_acpi",
    "ahci",
    "button",
    "evdev",
    "8139cp",
    "8139too",
    "e1000",
    "e1000e",
    "gpio_keys",
    "gpio_pl061",
    "pl061",
    "usbhid",
    "hid_generic",
    "xhci_pci",
    "ehci_pci",
    "uhci_hcd",
    "vmw_vsock_virtio_transport",
)
_REQUIRED = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "sr_mod", "isofs", "evdev")

ARCHES: dict[str, ArchProfile] = {
    "x86_64": ArchProfile(
        arch="x86_64",
        debarch="amd64",
        triplet="x86_64-linux-gnu",
        serial="ttyS0",
        # no_timer_check: under TCG on a busy host the kernel's IO-APIC timer test can miss its
        # ticks and panic ("IO-APIC + timer doesn't work!"); a virtual timer needs no such test.
        cmdline="console=tty0 console=ttyS0 quiet no_timer_check",
        vga=True,
        modules=_COMMON_MODULES,
        required=_REQUIRED + ("button",),
    ),
    "aarch64": ArchProfile(
        arch="aarch64",
        debarch="arm64",
        triplet="aarch64-linux-gnu",
        serial="ttyAMA0",
        cmdline="console=ttyAMA0 quiet",
        vga=False,
        modules=_COMMON_MODULES,
        required=_REQUIRED,
        extra_tools=(("gpiod", "usr/bin/gpiomon"),),
    ),
}


def _profile(arch: str) -> ArchProfile:
    try:
        return ARCHES[arch]
    except KeyError:
        raise InvalidInput(f"unknown guest architecture '{arch}' (known: {', '.join(ARCHES)})", field="arch") from None


def image_dir(arch: str) -> Path:
    _profile(arch)
    return data_dir() / "images" / f"tiny-{arch}"


def _cache_dir() -> Path:
    return data_dir() / "cache" / "debs"


def find_tiny(arch: str) -> GuestImage | None:
    """The cached image if complete (manifest.json present), else None."""
    d = image_dir(arch)
    try:
        m = json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    img = GuestImage(
        arch=arch,
        kernel=d / "vmlinuz",
        initrd=d / "initrd.img",
        # The command line is not baked into the files: the current profile's applies to old builds too.
        cmdline=ARCHES[arch].cmdline,
        ready_marker=m.get("ready_marker") or READY_MARKER,
        kernel_version=m.get("kernel_version", ""),
    )
    if m.get("builder_version") != BUILDER_VERSION or not img.kernel.is_file() or not img.initrd.is_file():
        return None
    return img


@contextlib.contextmanager
def _lock(arch: str) -> Iterator[None]:
    d = data_dir() / "images"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f".tiny-{arch}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_tiny(arch: str, *, progress: Progress | None = None, force: bool = False) -> GuestImage:
    """Build (or return the cached) tiny guest image for arch. Idempotent."""
    prof = _profile(arch)
    say: Progress = progress or (lambda _m: None)
    if not force and (img := find_tiny(arch)) is not None:
        say(f"using cached tiny image {img.initrd.parent}")
        return img
    with _lock(arch):
        if not force and (img := find_tiny(arch)) is not None:
            return img
        t0 = time.monotonic()
        out = image_dir(arch)
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"tiny-{arch}-", dir=out.parent) as tmp:
            img = _build(prof, Path(tmp), out, say)
        say(f"tiny {arch} image ready in {time.monotonic() - t0:.1f} s: {out}")
        return img


# ---------------------------------------------------------------- building


def _host_is(prof: ArchProfile) -> bool:
    return platform.machine() == prof.arch


def _pkg(prof: ArchProfile, name: str) -> str:
    return name if _host_is(prof) else f"{name}:{prof.debarch}"


def _build(prof: ArchProfile, tmp: Path, out: Path, say: Progress) -> GuestImage:
    debs = _cache_dir()
    if not _host_is(prof):
        deb.ensure_arch(prof.debarch, say)
    packages: dict[str, str] = {}

    # 1. kernel
    say(f"looking up the Debian cloud kernel for {prof.debarch}")
    kpkg = deb.kernel_package("cloud", prof.debarch, say)
    kdeb = deb.download(kpkg, debs, say)
    packages[kpkg] = kdeb.name
    say(f"extracting {kdeb.name}")
    kroot = tmp / "kernel"
    deb.extract(kdeb, kroot)
    kver, vmlinuz, moddir = _kernel_layout(kroot)

    # 2. modules and their dependencies
    dep = _module_deps(kroot, kver, moddir, say)
    order, missing = kmods.closure(list(prof.modules), dep)
    need_missing = [m for m in prof.required if m in missing and not _builtin(moddir, m)]
    if need_missing:
        raise HostError(f"kernel {kver} lacks required modules: {', '.join(need_missing)}")
    absent = [m for m in missing if not _builtin(moddir, m)]
    say(f"{len(order)} kernel modules (with dependencies); not in this kernel: {', '.join(absent) or 'none'}")

    # 3. busybox
    busybox = _busybox(prof, tmp, debs, packages, say)

    # 4. qemu-ga (+ gpiomon on arm64) and their shared libraries
    tools, libs, interp = _userland(prof, tmp, debs, packages, say)
    say(f"qemu-ga with {len(libs)} shared libraries")

    # 5. the initramfs
    tree = cpio.Tree()
    for d in "proc sys dev run tmp mnt root var/log etc/vmdeck usr/bin usr/sbin sbin".split():
        tree.dir(d)
    tree.dir("tmp", 0o1777)
    tree.chardev("dev/console", 5, 1)
    tree.chardev("dev/null", 1, 3, 0o666)
    tree.file("bin/busybox", busybox.read_bytes(), 0o755)
    tree.symlink("bin/sh", "busybox")
    tree.symlink("sbin/init", "../bin/busybox")
    tree.symlink("init", "bin/busybox")
    tree.symlink("var/run", "../run")
    for applet in _applets(prof, busybox):
        if applet not in tree:
            tree.symlink(applet, "/bin/busybox")
    for path, (text, mode) in guest_files(prof.serial, prof.vga).items():
        tree.file(path, text, mode)
    for gpath, src in tools.items():
        tree.file(gpath, src.read_bytes(), 0o755)
    for soname, src in libs.items():
        tree.file(f"lib/{prof.triplet}/{soname}", src.read_bytes(), 0o755)
    tree.file(interp[0], interp[1].read_bytes(), 0o755)
    mroot = f"lib/modules/{kver}"
    for rel in order:
        tree.file(f"{mroot}/{kmods.normalize_path(rel)}", kmods.read_module(moddir / rel), 0o644)
    tree.file(
        f"{mroot}/modules.dep",
        kmods.format_modules_dep(
            {kmods.normalize_path(k): [kmods.normalize_path(x) for x in v] for k, v in dep.items()},
            [kmods.normalize_path(r) for r in order],
        ),
    )
    for extra in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (moddir / extra).is_file():
            tree.file(f"{mroot}/{extra}", (moddir / extra).read_bytes())
    tree.file("etc/vmdeck/modules", "".join(kmods.normalize_path(r) + "\n" for r in order))

    say("writing initramfs (cpio newc, gzip)")
    blob = cpio.gzip_newc(tree.entries())
    _atomic_write(out / "initrd.img", blob)
    _atomic_write(out / "vmlinuz", vmlinuz.read_bytes())
    manifest = {
        "builder_version": BUILDER_VERSION,
        "arch": prof.arch,
        "kernel_version": kver,
        "cmdline": prof.cmdline,
        "ready_marker": READY_MARKER,
        "serial": prof.serial,
        "packages": packages,
        "modules": [kmods.module_name(r) for r in order],
        "modules_absent": absent,
        "initrd_bytes": len(blob),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _atomic_write(out / "manifest.json", json.dumps(manifest, indent=2).encode())
    say(f"initrd.img {len(blob) / 1e6:.1f} MB, kernel {kver}")
    img = find_tiny(prof.arch)
    assert img is not None
    return img


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _kernel_layout(kroot: Path) -> tuple[str, Path, Path]:
    for base in (kroot / "lib" / "modules", kroot / "usr" / "lib" / "modules"):
        if base.is_dir():
            versions = sorted(p.name for p in base.iterdir() if p.is_dir())
            if versions:
                kver = versions[-1]
                vmlinuz = kroot / "boot" / f"vmlinuz-{kver}"
                if not vmlinuz.is_file():
                    raise HostError(f"kernel package has no boot/vmlinuz-{kver}")
                return kver, vmlinuz, base / kver
    raise HostError("kernel package has no lib/modules/<version> directory")


def _module_deps(kroot: Path, kver: str, moddir: Path, say: Progress) -> dict[str, list[str]]:
    depmod = shutil.which("depmod") or next(
        (p for p in ("/usr/sbin/depmod", "/sbin/depmod") if os.access(p, os.X_OK)), None
    )
    if depmod and moddir.parent == kroot / "lib" / "modules":
        say(f"depmod -b <root> {kver}")
        try:
            deb._run([depmod, "-b", str(kroot), kver])
            text = (moddir / "modules.dep").read_text()
            return kmods.parse_modules_dep(text)
        except (HostError, OSError):
            pass
    say("computing module dependencies from .modinfo (no depmod on this host)")
    return kmods.scan_tree(moddir)


def _builtin(moddir: Path, name: str) -> bool:
    try:
        text = (moddir / "modules.builtin").read_text()
    except OSError:
        return False
    return any(kmods.module_name(line.strip()) == kmods.normalize(name) for line in text.splitlines())


def _busybox(prof: ArchProfile, tmp: Path, debs: Path, packages: dict[str, str], say: Progress) -> Path:
    host = Path("/bin/busybox")
    if _host_is(prof) and host.is_file():
        info = elf.dynamic_info(host.read_bytes())
        if info.machine == prof.arch and info.interp is None:
            return host
    pkg = _pkg(prof, "busybox-static")
    p = deb.download(pkg, debs, say)
    packages[pkg] = p.name
    root = tmp / "busybox"
    deb.extract(p, root)
    for cand in (root / "bin" / "busybox", root / "usr" / "bin" / "busybox"):
        if cand.is_file():
            return cand
    raise HostError(f"{p.name} contains no bin/busybox")


def _applets(prof: ArchProfile, busybox: Path) -> list[str]:
    """Applet paths ('sbin/acpid', ...) when the busybox runs on this host; else the
    guest links them at boot (busybox --install -s)."""
    if not _host_is(prof):
        return []
    try:
        out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [a.strip("/") for a in out.stdout.split() if a.strip("/") and ".." not in a]


def _resolve_in_root(path: Path, root: Path) -> Path | None:
    """Follow symlinks as if root were '/'."""
    for _ in range(40):
        if not path.is_symlink():
            return path if path.is_file() else None
        target = os.readlink(path)
        path = (root / target.lstrip("/")) if target.startswith("/") else (path.parent / target)
    return None


def _find_lib(soname: str, roots: list[Path], triplet: str) -> Path | None:
    for root in roots:
        for d in (f"lib/{triplet}", f"usr/lib/{triplet}", "lib", "usr/lib", "lib64", "usr/lib64"):
            cand = root / d / soname
            if cand.exists() or cand.is_symlink():
                real = _resolve_in_root(cand, root)
                if real is not None:
                    return real
    return None


def lib_closure(binaries: list[Path], roots: list[Path], triplet: str) -> tuple[dict[str, Path], str | None, list[str]]:
    """(soname -> file, program interpreter path, missing sonames) for the binaries."""
    libs: dict[str, Path] = {}
    missing: list[str] = []
    interp = None
    todo = list(binaries)
    seen: set[Path] = set()
    while todo:
        b = todo.pop()
        if b in seen:
            continue
        seen.add(b)
        info = elf.dynamic_info(b.read_bytes())
        interp = interp or info.interp
        for so in info.needed:
            if so in libs or so in missing:
                continue
            f = _find_lib(so, roots, triplet)
            if f is None:
                missing.append(so)
            else:
                libs[so] = f
                todo.append(f)
    return libs, interp, missing


def _userland(
    prof: ArchProfile, tmp: Path, debs: Path, packages: dict[str, str], say: Progress
) -> tuple[dict[str, Path], dict[str, Path], tuple[str, Path]]:
    """Guest tools (guest path -> file), their libraries and the dynamic loader."""
    host_qga = Path("/usr/sbin/qemu-ga")
    if _host_is(prof) and host_qga.is_file() and not prof.extra_tools:
        roots = [Path("/")]
        tools = {"usr/sbin/qemu-ga": host_qga}
    else:
        sysroot = tmp / "sysroot"
        roots = [sysroot]
        wanted = [("qemu-guest-agent", "usr/sbin/qemu-ga"), *prof.extra_tools]
        queue = [_pkg(prof, p) for p, _ in wanted]
        done: set[str] = set()
        tools = {}
        for _round in range(8):
            for pkg in queue:
                p = deb.download(pkg, debs, say)
                packages[pkg] = p.name
                deb.extract(p, sysroot)
                done.add(pkg)
            tools = {path: sysroot / path for _p, path in wanted}
            for path, f in tools.items():
                if not f.is_file():
                    raise HostError(f"package for {path} does not contain it")
            _libs, _interp, missing = lib_closure(list(tools.values()), roots, prof.triplet)
            if not missing:
                break
            # which package ships the library? ask the host's dpkg about its own copy
            new = {n for so in missing if (n := deb.package_of_file(so))}
            queue = sorted({_pkg(prof, n) for n in new} - done)
            if not queue:  # fall back to the direct Depends of what we have (arch-specific ones)
                deps = {_pkg(prof, d) for pkg in done for d in deb.depends(pkg)} - done
                queue = sorted(q for q in deps if deb.candidate(q))
                done |= deps - set(queue)
            if not queue:
                raise HostError(f"cannot find {prof.debarch} packages for: {', '.join(missing)}")
    libs, interp, missing = lib_closure(list(tools.values()), roots, prof.triplet)
    if missing:
        raise HostError(f"shared libraries not found for qemu-ga: {', '.join(missing)}")
    if interp is None:
        raise HostError("qemu-ga has no program interpreter (expected a dynamic executable)")
    ifile = None
    for root in roots:
        ifile = _resolve_in_root(root / interp.lstrip("/"), root)
        if ifile:
            break
    if ifile is None:
        ifile = _find_lib(Path(interp).name, roots, prof.triplet)
    if ifile is None:
        raise HostError(f"dynamic loader {interp} not found")
    libs.pop(Path(interp).name, None)
    for f in tools.values():
        if elf.dynamic_info(f.read_bytes()).machine != prof.arch:
            raise HostError(f"{f} is not an {prof.arch} binary")
    return tools, libs, (interp.lstrip("/"), ifile)

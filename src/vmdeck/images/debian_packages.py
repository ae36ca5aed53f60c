"""Fetch and unpack Debian packages without installing them (apt-get download,
dpkg-deb -x). Every command is an argument list; nothing goes through a shell."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from vmdeck.errors import HostError

Progress = Callable[[str], None]

_PKG_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9]+)?$")


def _check_name(pkg: str) -> None:
    if not _PKG_RE.fullmatch(pkg):
        raise HostError(f"not a Debian package name: {pkg!r}")


def _run(args: list[str], *, cwd: Path | None = None, timeout: float = 600) -> str:
    if shutil.which(args[0]) is None:
        raise HostError(f"'{args[0]}' is not installed on this host (needed to build the tiny guest image)")
    try:
        p = subprocess.run(
            args,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"},
        )
    except subprocess.TimeoutExpired:
        raise HostError(f"'{' '.join(args)}' timed out after {timeout:.0f} s") from None
    if p.returncode != 0:
        lines = [ln for ln in (p.stderr or p.stdout).splitlines() if ln.strip() and not ln.startswith("W:")]
        last = lines[-1] if lines else f"exit status {p.returncode}"
        raise HostError(f"'{' '.join(args)}' failed: {last}")
    return p.stdout


def host_arch() -> str:
    return _run(["dpkg", "--print-architecture"]).strip()


def foreign_archs() -> list[str]:
    return _run(["dpkg", "--print-foreign-architectures"]).split()


def ensure_arch(debarch: str, progress: Progress | None = None) -> None:
    """Make apt know about a foreign architecture (dpkg --add-architecture + update)."""
    if debarch == host_arch() or debarch in foreign_archs():
        return
    if progress:
        progress(f"enabling the {debarch} package architecture (dpkg --add-architecture {debarch}, apt-get update)")
    _run(["dpkg", "--add-architecture", debarch])
    apt_update(progress)


def apt_update(progress: Progress | None = None) -> None:
    if progress:
        progress("updating the apt package lists")
    _run(["apt-get", "update"], timeout=900)


def candidate(pkg: str) -> str | None:
    """The version apt would download, or None."""
    _check_name(pkg)
    out = _run(["apt-cache", "policy", pkg])
    m = re.search(r"^\s*Candidate:\s*(\S+)", out, re.M)
    if not m or m.group(1) == "(none)":
        return None
    return m.group(1)


def depends(pkg: str) -> list[str]:
    """Direct Depends/PreDepends of a package, first alternative, arch stripped."""
    _check_name(pkg)
    out = _run(["apt-cache", "depends", pkg])
    deps = []
    alt = False
    for line in out.splitlines():
        m = re.match(r"^\s*(\|)?(Pre)?Depends:\s*<?([^\s>]+)>?", line)
        if m:
            if not alt:
                deps.append(m.group(3).split(":")[0])
            alt = bool(m.group(1))
        elif line.strip() and not line.startswith(" "):
            alt = False
    return deps


def ensure_candidate(pkg: str, progress: Progress | None = None) -> str:
    """Candidate version, running apt-get update once when there is none."""
    ver = candidate(pkg)
    if ver is None:
        apt_update(progress)
        ver = candidate(pkg)
    if ver is None:
        raise HostError(f"package {pkg} is not available from the configured apt sources")
    return ver


def download(pkg: str, dest: Path, progress: Progress | None = None) -> Path:
    """apt-get download pkg[:arch] into dest (reused when already there); the .deb path."""
    _check_name(pkg)
    name, _, arch = pkg.partition(":")
    arch = arch or host_arch()
    dest.mkdir(parents=True, exist_ok=True)
    # a package downloaded earlier is reused as is (apt-cache is slow with two archs)
    cached = sorted(p for a in (arch, "all") for p in dest.glob(f"{name}_*_{a}.deb") if p.stat().st_size > 0)
    if cached:
        return cached[-1]
    ver = ensure_candidate(pkg, progress)
    fname = f"{name}_{ver.replace(':', '%3a')}_{arch}.deb"
    path = dest / fname
    if path.exists() and path.stat().st_size > 0:
        return path
    # Arch: all packages carry "_all.deb"
    alt = dest / f"{name}_{ver.replace(':', '%3a')}_all.deb"
    if alt.exists() and alt.stat().st_size > 0:
        return alt
    if progress:
        progress(f"downloading {name} {ver} ({arch})")
    _run(["apt-get", "download", "-o", "APT::Sandbox::User=root", pkg], cwd=dest)
    for p in (path, alt):
        if p.exists():
            return p
    raise HostError(f"apt-get download {pkg} did not produce {fname}")


def extract(deb: Path, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb), str(root)])


def package_of_file(pattern: str) -> str | None:
    """Which installed host package ships a file matching */pattern (dpkg -S)."""
    try:
        out = _run(["dpkg", "-S", f"*/{pattern}"])
    except HostError:
        return None
    for line in out.splitlines():
        pkgs, _, path = line.partition(": ")
        if path.strip().endswith("/" + pattern) and "," not in pkgs:
            return pkgs.split(":")[0]
    return None


def kernel_package(flavour: str, debarch: str, progress: Progress | None = None) -> str:
    """'cloud', 'arm64' -> 'linux-image-6.1.0-N-cloud-arm64-unsigned' (or the signed
    one when no -unsigned exists), from the linux-image-<flavour>-<arch> meta package."""
    meta = f"linux-image-{flavour}-{debarch}"
    q = meta if debarch == host_arch() else f"{meta}:{debarch}"
    ensure_candidate(q, progress)
    for d in depends(q):
        if d.startswith("linux-image-") and d != meta:
            for name in (f"{d}-unsigned", d):
                full = name if debarch == host_arch() else f"{name}:{debarch}"
                if candidate(full):
                    return full
    raise HostError(f"cannot find the kernel package behind {meta}")

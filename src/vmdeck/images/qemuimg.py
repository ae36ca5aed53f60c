"""qemu-img for imports: read a foreign disk's facts and convert it to qcow2 with progress (images layer).

Every call names the source format (`-f`): probing an untrusted file's format is
how a raw image posing as qcow2 reaches a backing file on the host. A source that
points outside itself (a backing file, an external data file, a VMDK extent
outside its folder) is refused before QEMU reads a byte of guest data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmdeck.errors import HostError, InvalidInput

__all__ = ["DiskFacts", "disk_facts", "convert_to_qcow2", "json_member", "FORMAT_BY_SUFFIX"]

# The format a file's suffix stands for (qemu's names: VHD is "vpc").
FORMAT_BY_SUFFIX = {".vmdk": "vmdk", ".vhdx": "vhdx", ".vhd": "vpc", ".qcow2": "qcow2", ".img": "raw",
                    ".raw": "raw"}


def _qemu_img() -> str:
    found = shutil.which("qemu-img")
    if found is None:
        raise HostError("qemu-img is not installed (Debian package qemu-utils)")
    return found


def json_member(archive: Path, offset: int, size: int, fmt: str) -> str:
    """A qemu source for a file stored inside a tar at `offset` (read in place: nothing is extracted)."""
    return "json:" + json.dumps({"driver": fmt, "file": {"driver": "raw", "offset": offset, "size": size,
                                                        "file": {"driver": "file", "filename": str(archive)}}})


@dataclass(frozen=True)
class DiskFacts:
    format: str
    virtual_size: int
    subformat: str  # a VMDK's create-type ("streamOptimized", "twoGbMaxExtentSparse" ...), else ""
    extents: tuple[str, ...]  # a VMDK's extent files as QEMU resolved them


def _check_contained(facts: dict[str, object], source: str, folder: Path | None, label: str) -> tuple[str, ...]:
    if facts.get("backing-filename") or facts.get("full-backing-filename"):
        raise InvalidInput(f"disk {label} has a backing file ({facts.get('backing-filename')}): import its "
                           "flattened image instead (qemu-img convert)")
    specific = facts.get("format-specific")
    data = specific.get("data", {}) if isinstance(specific, dict) else {}
    if isinstance(data, dict) and data.get("data-file"):
        raise InvalidInput(f"disk {label} keeps its data in an external file: refused")
    extents = tuple(str(e.get("filename", "")) for e in data.get("extents", []) if isinstance(e, dict)) \
        if isinstance(data, dict) else ()
    layer = json.loads(source[5:]).get("file") if source.startswith("json:") else None
    for extent in extents:
        if extent == source:
            continue
        if layer is not None and extent.startswith("json:") and json.loads(extent[5:]) == layer:
            continue  # the member inside the OVA itself
        if folder is None:
            raise InvalidInput(f"disk {label} is a VMDK descriptor with extents in other files: inside a package "
                               "only single-file VMDKs (streamOptimized, monolithic sparse) are accepted")
        path = Path(extent) if os.path.isabs(extent) else folder / extent
        if path.parent.resolve() != folder.resolve() or path.is_symlink() or not path.is_file():
            raise InvalidInput(f"disk {label} has an extent {extent} outside its folder, a symlink or not a "
                               "regular file: refused")
    return extents


_EXTENT = re.compile(r'^\s*(?:RW|RDONLY|NOACCESS)\s+\d+\s+\w+\s+"([^"]*)"', re.MULTILINE)


def _check_descriptor_extents(source: str, label: str) -> None:
    """A VMDK text descriptor names its extent files: each must be a plain, regular file beside it, checked
    before qemu-img opens any of them (an extent "/dev/sda" would otherwise be opened by QEMU)."""
    path = Path(source)
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    if head.startswith(b"KDMV") or b"# Disk DescriptorFile" not in head[:1024]:
        return  # a sparse VMDK with its descriptor embedded: one file
    for name in _EXTENT.findall(head.decode("utf-8", errors="replace")):
        extent = path.parent / name
        if not name or "/" in name or "\\" in name or name in (".", "..") or extent.is_symlink() \
                or not extent.is_file():
            raise InvalidInput(f"disk {label} has an extent {name!r} that is not a plain file beside it: refused")


def disk_facts(source: str, fmt: str, *, label: str, folder: Path | None) -> DiskFacts:
    """qemu-img info of `source` read as `fmt`; refused when it reaches outside itself (`folder`: where
    a VMDK's extents may live; None: nowhere else)."""
    if fmt == "vmdk" and not source.startswith("json:"):
        _check_descriptor_extents(source, label)
    result = subprocess.run([_qemu_img(), "info", "--output=json", "-f", fmt, source],
                            capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        detail = " ".join(result.stderr.strip().split()) or "no details"
        raise InvalidInput(f"disk {label} is not a {fmt} image qemu-img can read: {detail}")
    facts = json.loads(result.stdout)
    extents = _check_contained(facts, source, folder, label)
    specific = facts.get("format-specific", {})
    subformat = str(specific.get("data", {}).get("create-type", "")) if fmt == "vmdk" else ""
    return DiskFacts(format=fmt, virtual_size=int(facts["virtual-size"]), subformat=subformat, extents=extents)


_PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


def convert_to_qcow2(source: str, fmt: str, dest: Path, capacity: int,
                     progress: Callable[[float], None] = lambda _p: None) -> None:
    """`qemu-img convert -p` into a new qcow2 file at `dest` (which must not exist), grown to `capacity`.
    On any failure the partial file is removed."""
    command = [_qemu_img(), "convert", "-p", "-f", fmt, "-O", "qcow2", "-o", "preallocation=off", source, str(dest)]
    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            last = -1.0
            buffer = b""
            while chunk := os.read(proc.stdout.fileno(), 256):
                buffer = (buffer + chunk)[-512:]
                found = _PERCENT.findall(buffer)
                if found:
                    percent = float(found[-1])
                    if int(percent) > int(last):
                        progress(percent)
                        last = percent
                    buffer = b""
            errors = proc.stderr.read().decode(errors="replace")
            code = proc.wait()
        if code != 0:
            detail = " ".join(errors.strip().split()) or f"exit status {code}"
            if "No space left" in detail:
                raise HostError(f"no space left for {dest.name}: {detail}")
            raise InvalidInput(f"qemu-img could not convert the disk: {detail}")
        current = int(json.loads(subprocess.run([_qemu_img(), "info", "--output=json", "-f", "qcow2", str(dest)],
                                                capture_output=True, text=True, check=True).stdout)["virtual-size"])
        if capacity > current:
            subprocess.run([_qemu_img(), "resize", "-q", "-f", "qcow2", str(dest), str(capacity)],
                           capture_output=True, text=True, check=True)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise

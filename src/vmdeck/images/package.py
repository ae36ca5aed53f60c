"""A VM from elsewhere, opened for import: an OVA (a tar), an OVF beside its disks, or one disk image (images layer).

An OVA is never extracted: its tar headers are read, every member must be a
plain regular file with a plain name (no folder, no link, no device, no sparse
member), and QEMU reads each disk in place at its offset (`json:` with a raw
`offset`). The descriptor and the manifest, small, are read into memory. An
OVF's disk files are opened without following symlinks. Manifest sums are
checked over exactly the bytes QEMU will read.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from vmdeck.errors import InvalidInput, NotFound
from vmdeck.images.ovf import check_href, open_package_file, parse_manifest
from vmdeck.images.qemuimg import FORMAT_BY_SUFFIX, json_member

__all__ = ["Package", "open_package", "SUFFIXES"]

SUFFIXES = (".ova", ".ovf", *FORMAT_BY_SUFFIX)
_SMALL = 16 << 20  # a descriptor or manifest larger than this is not one


@dataclass(frozen=True)
class Member:
    offset: int
    size: int


@dataclass
class Package:
    path: Path
    kind: str  # "ova", "ovf" or "disk"
    descriptor: bytes | None = None
    manifest: dict[str, tuple[str, str]] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)  # an OVA's files
    folder: Path | None = None  # an OVF's or a bare disk's folder

    def source(self, href: str, fmt: str) -> str:
        """What qemu-img reads for the package file `href` (an OVA member in place, or the file)."""
        if self.kind == "ova":
            member = self.members.get(href)
            if member is None:
                raise InvalidInput(f"the OVA has no file {href!r}")
            return json_member(self.path, member.offset, member.size, fmt)
        assert self.folder is not None
        fd = open_package_file(self.folder, href)  # refuses symlinks and non-regular files
        os.close(fd)
        return str(self.folder / href)

    def head(self, href: str, size: int = 1024) -> bytes:
        """The first bytes of the package's file `href`."""
        if self.kind == "ova":
            member = self.members[href]
            with open(self.path, "rb") as handle:
                handle.seek(member.offset)
                return handle.read(min(size, member.size))
        assert self.folder is not None
        with os.fdopen(open_package_file(self.folder, href), "rb") as handle:
            return handle.read(size)

    def digest(self, href: str, algorithm: str) -> str:
        hasher = hashlib.new(algorithm)
        if self.kind == "ova":
            member = self.members[href]
            with open(self.path, "rb") as handle:
                handle.seek(member.offset)
                left = member.size
                while left:
                    chunk = handle.read(min(left, 8 << 20))
                    if not chunk:
                        raise InvalidInput(f"the OVA ends inside its file {href}")
                    hasher.update(chunk)
                    left -= len(chunk)
            return hasher.hexdigest()
        assert self.folder is not None
        with os.fdopen(open_package_file(self.folder, href), "rb") as handle:
            while chunk := handle.read(8 << 20):
                hasher.update(chunk)
        return hasher.hexdigest()

    def verify(self, hrefs: list[str]) -> None:
        """The manifest's sums of the descriptor and of `hrefs` (the disks to import) must match."""
        for href, (algorithm, expected) in self.manifest.items():
            if self.kind == "ova" and href not in self.members:
                raise InvalidInput(f"the manifest lists {href}, which the OVA does not have")
            if href.endswith(".ovf") or href in hrefs:
                if self.digest(href, algorithm) != expected:
                    raise InvalidInput(f"file {href} does not match the manifest's {algorithm.upper()} sum: "
                                       "the package is damaged or was changed")


def _member_name(info: tarfile.TarInfo) -> str:
    name = info.name.removeprefix("./")
    if not (info.isreg() and info.type in (tarfile.REGTYPE, tarfile.AREGTYPE)) or info.issparse():
        kind = "a link" if info.issym() or info.islnk() else "a folder" if info.isdir() else "not a regular file"
        raise InvalidInput(f"the OVA's member {info.name!r} is {kind}: an OVA holds plain files only")
    try:
        return check_href(name)
    except InvalidInput:
        raise InvalidInput(f"the OVA's member {info.name!r} has a path: an OVA holds plain file names only") from None


def _open_ova(path: Path) -> Package:
    package = Package(path=path, kind="ova")
    try:
        with tarfile.open(path, mode="r:") as archive:  # "r:": no compression, members stay readable in place
            for info in archive:
                if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME):
                    continue
                name = _member_name(info)
                if name in package.members:
                    raise InvalidInput(f"the OVA holds {name!r} twice")
                package.members[name] = Member(info.offset_data, info.size)
                if name.endswith((".ovf", ".mf")):
                    if info.size > _SMALL:
                        raise InvalidInput(f"the OVA's {name} is {info.size} bytes: too large for a descriptor")
                    handle = archive.extractfile(info)
                    assert handle is not None
                    data = handle.read()
                    if name.endswith(".ovf"):
                        if package.descriptor is not None:
                            raise InvalidInput("the OVA holds more than one OVF descriptor")
                        package.descriptor = data
                    else:
                        package.manifest = parse_manifest(data.decode("utf-8", errors="replace"))
    except tarfile.TarError as err:
        raise InvalidInput(f"{path.name} is not an OVA (a tar archive): {err}") from None
    if package.descriptor is None:
        raise InvalidInput(f"the OVA {path.name} holds no .ovf descriptor")
    return package


def _open_ovf(path: Path) -> Package:
    if path.stat().st_size > _SMALL:
        raise InvalidInput(f"{path.name} is too large for an OVF descriptor")
    package = Package(path=path, kind="ovf", descriptor=path.read_bytes(), folder=path.parent)
    manifest = path.with_suffix(".mf")
    if manifest.is_symlink():
        raise InvalidInput(f"the package's manifest {manifest.name} is a symbolic link: refused")
    if manifest.is_file():
        package.manifest = parse_manifest(manifest.read_text(errors="replace"))
    return package


def open_package(path: Path) -> Package:
    """Open FILE for import by its suffix: .ova, .ovf, .vmdk, .vhdx, .vhd, .qcow2, .img/.raw."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise NotFound(f"{path} does not exist")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a regular file")
    suffix = path.suffix.lower()
    if suffix == ".ova":
        return _open_ova(path)
    if suffix == ".ovf":
        return _open_ovf(path)
    if suffix in FORMAT_BY_SUFFIX:
        return Package(path=path, kind="disk", folder=path.parent)
    raise InvalidInput(f"cannot import {path.name}: vmdeck imports {', '.join(SUFFIXES)}")

"""The image library: base disk images VMs are linked clones of (images layer).

Each image is `data_dir()/images/NAME.qcow2` (or `.raw`) plus `NAME.json`, a small
record (name, os, arch, format, virtual size, origin) written last: an image file
without its record is incomplete and not listed. Images come from
`vmdeck image build debian-12` or from `vmdeck image import FILE` (any qcow2 or
raw cloud image a user already has). The tiny guest (a kernel + initrd, not a
disk) lives beside them in `tiny-ARCH/` and is not part of this library.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vmdeck.errors import Conflict, HostError, InvalidInput, NotFound
from vmdeck.paths import data_dir

__all__ = ["ImageRecord", "library_dir", "list_images", "find_image", "get_image", "qemu_img_info",
           "write_record", "import_image", "remove_image", "check_image_name", "default_template", "OS_NAMES"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,62}$")
OS_NAMES = ("debian", "ubuntu", "fedora", "centos", "rocky", "alma", "opensuse", "arch", "alpine", "linux", "other")
RESERVED = ("tiny",)
# The template a VM from an image gets when none is named: the built-in Debian one of the image's arch.
DEFAULT_TEMPLATES = {"x86_64": "debian-12", "aarch64": "debian-12-arm64"}


@dataclass(frozen=True)
class ImageRecord:
    name: str
    os: str
    arch: str
    format: str  # "qcow2" | "raw"
    virtual_size: int  # bytes
    path: str
    origin: str  # "built" | "imported from PATH"
    created_at: str = ""
    os_version: str = ""

    @property
    def virtual_gib(self) -> float:
        return self.virtual_size / 1024**3

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def library_dir() -> Path:
    return data_dir() / "images"


def check_image_name(name: str) -> str:
    if not _NAME_RE.match(name) or name in RESERVED:
        raise InvalidInput(f"invalid image name {name!r}: use 1-63 letters, digits, '.', '_', '+' or '-' "
                           f"(not {', '.join(RESERVED)})", field="name")
    return name


def _record_path(name: str) -> Path:
    return library_dir() / f"{name}.json"


def _read(path: Path) -> ImageRecord | None:
    try:
        data = json.loads(path.read_text())
        record = ImageRecord(**{k: data[k] for k in ImageRecord.__dataclass_fields__ if k in data})
    except (OSError, ValueError, TypeError):
        return None
    return record if Path(record.path).is_file() else None


def list_images() -> list[ImageRecord]:
    folder = library_dir()
    if not folder.is_dir():
        return []
    return [r for p in sorted(folder.glob("*.json")) if (r := _read(p)) is not None]


def find_image(name: str) -> ImageRecord | None:
    if not _NAME_RE.match(name):
        return None
    return _read(_record_path(name))


def get_image(name: str) -> ImageRecord:
    record = find_image(name)
    if record is None:
        known = ", ".join(r.name for r in list_images()) or "none yet: vmdeck image build debian-12"
        raise NotFound(f"no image named {name!r} in the library (known: {known})")
    return record


def default_template(image: str) -> str:
    """The template `create --image IMAGE` uses without one: an aarch64 image needs an aarch64 machine.
    An unknown image gets the x86_64 one; creating from it then says the image is not in the library."""
    record = find_image(image)
    return DEFAULT_TEMPLATES[record.arch if record is not None else "x86_64"]


def qemu_img_info(path: Path) -> dict[str, object]:
    """`qemu-img info` of a file: its format and virtual size, read by QEMU itself."""
    if shutil.which("qemu-img") is None:
        raise HostError("qemu-img is not installed (Debian package qemu-utils)")
    # -U: the image may be open by a running VM (as a backing file): reading it is still safe.
    result = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["unreadable"])[-1]
        raise InvalidInput(f"{path} is not a disk image qemu-img can read: {detail}", field="file")
    info: dict[str, object] = json.loads(result.stdout)
    return info


def write_record(record: ImageRecord) -> ImageRecord:
    path = _record_path(record.name)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)
    return record


def import_image(source: Path, *, name: str | None = None, os_name: str = "linux",
                 arch: str = "x86_64") -> ImageRecord:
    """Copy a qcow2 or raw image into the library under `name` (default: the file's stem)."""
    source = Path(source).expanduser().absolute()
    if not source.exists():
        raise NotFound(f"image file {source} does not exist")
    if not source.is_file():
        raise InvalidInput(f"{source} is not a regular file", field="file")
    if not os.access(source, os.R_OK):
        raise InvalidInput(f"{source} is not readable", field="file")
    name = check_image_name(name or source.name.split(".")[0])
    if os_name not in OS_NAMES:
        raise InvalidInput(f"unknown OS {os_name!r} (use one of {', '.join(OS_NAMES)})", field="os")
    if arch not in ("x86_64", "aarch64"):
        raise InvalidInput(f"unknown architecture {arch!r}: use x86_64 or aarch64", field="arch")
    if find_image(name) is not None:
        raise Conflict(f"an image named {name!r} is already in the library (vmdeck image remove {name} first)")
    info = qemu_img_info(source)
    fmt = str(info.get("format", ""))
    if fmt not in ("qcow2", "raw"):
        raise InvalidInput(f"{source} is a {fmt or 'unknown'} image: import takes qcow2 or raw", field="file")
    if info.get("backing-filename"):
        raise InvalidInput(f"{source} is an overlay on {info['backing-filename']}: import a standalone image "
                           "(qemu-img convert -O qcow2 it first)", field="file")
    folder = library_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{name}.{fmt}"
    partial = folder / f".{name}.{fmt}.partial"
    try:
        shutil.copyfile(source, partial)
        os.chmod(partial, 0o644)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    virtual_size = info.get("virtual-size", 0)
    return write_record(ImageRecord(
        name=name, os=os_name, arch=arch, format=fmt,
        virtual_size=int(virtual_size) if isinstance(virtual_size, int) else 0,
        path=str(dest), origin=f"imported from {source}",
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))


def remove_image(name: str, users: list[str]) -> ImageRecord:
    """Delete an image and its record; refuses while VMs (`users`) use it as their backing file."""
    record = get_image(name)
    if users:
        raise Conflict(f"image {name!r} is the backing file of VM(s) {', '.join(sorted(users))}: "
                       "delete them first")
    _record_path(name).unlink(missing_ok=True)  # the record first: a half-removed image is not listed
    Path(record.path).unlink(missing_ok=True)
    return record

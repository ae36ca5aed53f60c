"""Disk image files on this host: backing chains, overlays, offline commit/rebase, checks (core layer).

Snapshots and linked clones are chains of qcow2 files. Creating an overlay
goes through libvirt's storage API (the pool stays in sync); reading a chain
and the offline merges use `qemu-img`, which only works on the VM's own host,
so the callers refuse remote hosts. `-U` (force-share) lets vmdeck read the
header of an image a running QEMU holds open; it never writes one.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vmdeck.domxml.snapshots import overlay_volume_xml
from vmdeck.errors import Conflict, HostError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.storage.pool import ensure_pool

__all__ = ["ImageInfo", "image_info", "read_backing", "backing_chain", "create_overlay", "qemu_img_commit",
           "qemu_img_rebase_unsafe", "qemu_img_check"]


@dataclass(frozen=True)
class ImageInfo:
    path: str
    format: str
    virtual_size: int
    backing: str | None  # absolute path of the backing file, None for a base image
    backing_format: str | None


def _qemu_img(args: list[str], what: str, timeout: float = 3600) -> str:
    try:
        done = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as err:
        raise HostError("qemu-img is not installed (Debian package qemu-utils)") from err
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise VmdeckError(f"{what}: {detail[-1] if detail else f'qemu-img exit {done.returncode}'}")
    return done.stdout


def image_info(path: str | Path) -> ImageInfo:
    """The header of one image; -U so that an image a running VM holds is readable too."""
    data = json.loads(_qemu_img(["info", "-U", "--output=json", str(path)], f"read image {path}"))
    backing = data.get("full-backing-filename") or data.get("backing-filename")
    if backing and not Path(backing).is_absolute():
        backing = str(Path(path).parent / backing)
    return ImageInfo(str(path), data.get("format", "raw"), int(data.get("virtual-size", 0)), backing,
                     data.get("backing-filename-format"))


QCOW2_MAGIC = b"QFI\xfb"


def read_backing(path: str | Path) -> str | None:
    """The backing file named in a qcow2 header (absolute), None for a base or non-qcow2 image.

    Read straight from the header (big-endian: magic, version, backing_file_offset u64,
    backing_file_size u32), not through `qemu-img info`: scanning every image of the pool
    costs microseconds instead of a process per file.
    """
    try:
        with open(path, "rb") as image:
            header = image.read(20)
            if len(header) < 20 or header[:4] != QCOW2_MAGIC:
                return None
            offset = int.from_bytes(header[8:16], "big")
            size = int.from_bytes(header[16:20], "big")
            if not offset or not size or size > 4096:
                return None
            image.seek(offset)
            name = image.read(size).decode("utf-8", "replace")
    except OSError:
        return None
    if name.startswith(("json:", "nbd:", "http:", "https:")):
        return name  # not a local file: nothing vmdeck made
    return name if Path(name).is_absolute() else str(Path(path).parent / name)


def backing_chain(path: str | Path) -> list[ImageInfo]:
    """`path` first, then its backing file, down to the base image."""
    chain: list[ImageInfo] = []
    current: str | None = str(path)
    while current is not None:
        if any(info.path == current for info in chain):
            raise Conflict(f"image {path} has a backing loop at {current}")
        if not Path(current).exists():
            break  # a missing backing file: the chain as far as it goes
        info = image_info(current)
        chain.append(info)
        current = info.backing
    return chain


def create_overlay(host: Host, backing: str | Path, name: str) -> str:
    """A new qcow2 volume `name` in vmdeck's pool whose backing file is `backing` (read-only from now on)."""
    base = image_info(backing)
    pool = ensure_pool(host)
    return pool.create_volume(overlay_volume_xml(name, base.virtual_size, str(backing), base.format)).path()


def qemu_img_commit(top: str | Path) -> None:
    """Write `top`'s clusters into its backing file (offline only: no QEMU may hold either)."""
    _qemu_img(["commit", "-q", "-d", str(top)], f"commit {top} into its backing file")


def qemu_img_rebase_unsafe(image: str | Path, new_backing: str | Path, backing_format: str) -> None:
    """Point `image` at `new_backing` without copying: only right when both hold the same data."""
    _qemu_img(["rebase", "-u", "-b", str(new_backing), "-F", backing_format, str(image)],
              f"rebase {image} onto {new_backing}")


def qemu_img_check(path: str | Path) -> str:
    """`qemu-img check` of one image (-U: readable while in use); raises when it finds corruption."""
    return _qemu_img(["check", "-U", str(path)], f"check {path}")

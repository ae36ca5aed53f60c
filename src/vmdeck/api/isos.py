"""The ISO library over REST: list, upload (streamed to disk), delete when no VM uses it (api layer).

The library is the folder vmdeck.paths.iso_dir(); VMs get media from it by
name (create's `cdrom`, the media endpoints), so a web client never names an
arbitrary file on the host.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request

from vmdeck.api.context import request_host
from vmdeck.errors import Conflict, HostError, InvalidInput, NotFound
from vmdeck.host.connection import Host
from vmdeck.paths import iso_dir
from vmdeck.storage.journal import temp_path
from vmdeck.vm.devices import users_of_image

__all__ = ["router", "iso_path", "iso_users"]

router = APIRouter(prefix="/api/isos", tags=["isos"])
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\.iso$")


def iso_path(name: str, *, field: str = "name") -> Path:
    """The library file for `name` (letters, digits, . _ + -, ending in .iso); never a path elsewhere."""
    if not _NAME.match(name):
        raise InvalidInput(f"{field}: an ISO name is 1-128 letters, digits, '.', '_', '+' or '-' ending in .iso",
                           field=field)
    return iso_dir() / name


def iso_users(host: Host, path: Path) -> list[str]:
    """VMs whose running or saved configuration has `path` in a drive."""
    return sorted({vm for vm, _disk in users_of_image(host, path, running_only=False)})


def _describe(host: Host, path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"name": path.name, "size_bytes": stat.st_size, "modified": stat.st_mtime, "path": str(path),
            "used_by": iso_users(host, path)}


@router.get("")
def isos_list(host: Host = Depends(request_host)) -> list[dict[str, Any]]:
    """Every ISO in the library, with the VMs that use it."""
    folder = iso_dir()
    if not folder.is_dir():
        return []
    return [_describe(host, p) for p in sorted(folder.glob("*.iso")) if p.is_file()]


@router.put("/{name}", status_code=201)
async def isos_upload(name: str, request: Request, host: Host = Depends(request_host)) -> dict[str, Any]:
    """Upload an ISO as the raw request body (streamed to disk, never held in memory)."""
    target = iso_path(name)
    if target.exists():
        raise Conflict(f"the ISO library already has {name!r} (delete it first)")
    target.parent.mkdir(parents=True, exist_ok=True)
    # A per-writer temporary name: two uploads of one name never share a file, and one left by a
    # killed server names its dead writer, so `vmdeck doctor` can tell it from an upload in progress.
    partial = temp_path(target)
    received = 0
    try:
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in request.stream():
                    received += len(chunk)
                    await out.write(chunk)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise HostError(f"no space left on {target.parent} for {name} "
                                f"(the upload stopped after {received} bytes)") from err
            raise HostError(f"cannot write {name} in {target.parent}: {err.strerror}") from err
        if received == 0:
            raise InvalidInput("the upload is empty (send the ISO as the request body)")
        os.chmod(partial, 0o644)  # QEMU runs as libvirt-qemu and must be able to read it
        try:
            os.link(partial, target)  # atomic, and unlike rename it never replaces a concurrent upload
        except FileExistsError:
            raise Conflict(f"the ISO library already has {name!r} (delete it first)") from None
    finally:
        partial.unlink(missing_ok=True)
    return await anyio.to_thread.run_sync(_describe, host, target)


@router.delete("/{name}")
def isos_delete(name: str, host: Host = Depends(request_host)) -> dict[str, Any]:
    """Delete an ISO that no VM has in a drive (Conflict naming the VMs otherwise)."""
    target = iso_path(name)
    if not target.is_file():
        raise NotFound(f"the ISO library has no {name!r}")
    users = iso_users(host, target)
    if users:
        raise Conflict(f"{name} is in a drive of {', '.join(users)}: eject it first")
    target.unlink()
    return {"name": name, "deleted": True}

"""The ISO library over REST: list, upload (streamed to disk), delete when no VM uses it (api layer).

The library is the folder vmdeck.paths.iso_dir(); VMs get media from it by
name (create's `cdrom`, the media endpoints), so a web client never names an
arbitrary file on the host. An ISO uploaded through the API belongs to a project
(vmdeck.store.tenancy) and counts against its ISO quota; one the host administrator
put in the folder belongs to none and every signed-in user may use it.

An upload streams into a temporary file of its own, is checked (size cap, ISO 9660
signature), and is published under its name atomically (a hard link, which fails
when the name is taken: 409) while the quota is checked under the database's write lock.
While it streams it holds its size against the project's quota (a reservation), and a
project has at most MAX_UPLOADS_PER_PROJECT uploads in flight. A project's ISO is 0640,
readable by QEMU's group, not by every local user.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import re
import secrets
import time
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request

from vmdeck.api.actors import request_actor, services_of
from vmdeck.api.context import AppContext, app_context, request_host
from vmdeck.api.errors import TooLarge
from vmdeck.api.policy import Grant, grant_of, visible
from vmdeck.errors import Conflict, HostError, InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.qemu_access import qemu_user
from vmdeck.paths import iso_dir
from vmdeck.storage.journal import temp_path
from vmdeck.store.quota import Demand, QuotaExceeded, remaining, reserve
from vmdeck.store.tasks import FLUSH_S, Task
from vmdeck.usecases import Actor
from vmdeck.usecases import library as library_cases
from vmdeck.vm.devices import users_of_image
from vmdeck.vm.project import vm_projects

__all__ = ["router", "iso_path", "iso_users", "usable_iso", "is_iso9660"]

router = APIRouter(prefix="/api/isos", tags=["isos"])
# Matched with fullmatch: "x.iso\n" is not a name ("$" would have accepted the newline).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\.iso")
# ISO 9660: the first volume descriptor sits at sector 16 (2048-byte sectors); its bytes 1-5 read "CD001".
_ISO9660_MAGIC_AT = 16 * 2048 + 1
_ISO9660_MAGIC = b"CD001"


def iso_path(name: str, *, field: str = "name") -> Path:
    """The library file for `name` (letters, digits, . _ + -, ending in .iso); never a path elsewhere."""
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"{field}: an ISO name is 1-128 letters, digits, '.', '_', '+' or '-' ending in .iso",
                           field=field)
    return iso_dir() / name


def usable_iso(ctx: AppContext, grant: Grant, name: str, *, field: str = "iso") -> Path:
    """The library file for `name` if the caller may put it in a drive: another project's upload is "not there"."""
    path = iso_path(name, field=field)
    principal = grant.principal
    if principal is not None and not principal.admin:
        owner = ctx.tenancy.iso_owner(name)
        if owner is not None and owner != grant.project:
            raise NotFound(f"ISO {path} does not exist")
    return path


def is_iso9660(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(_ISO9660_MAGIC_AT)
        return f.read(len(_ISO9660_MAGIC)) == _ISO9660_MAGIC


def iso_users(host: Host, path: Path) -> list[str]:
    """VMs whose running or saved configuration has `path` in a drive."""
    return sorted({vm for vm, _disk in users_of_image(host, path, running_only=False)})


def _describe(host: Host, path: Path, project: str | None, grant: Grant | None = None) -> dict[str, Any]:
    stat = path.stat()
    users = iso_users(host, path)
    principal = grant.principal if grant is not None else None
    tenant = principal is not None and not principal.admin
    if principal is not None and not principal.admin:
        projects = vm_projects(host)  # name only the VMs the caller may see
        users = [u for u in users if visible(principal, projects.get(u))]
    return {"name": path.name, "size_bytes": stat.st_size, "modified": stat.st_mtime,
            "path": None if tenant else str(path),  # the host's folders are the administrator's business
            "project": project, "used_by": users}


@router.get("")
def isos_list(host: Host = Depends(request_host), grant: Grant = Depends(grant_of),
              ctx: AppContext = Depends(app_context)) -> list[dict[str, Any]]:
    """The ISOs you may use: your projects' uploads and the host's shared ones (project null)."""
    folder = iso_dir()
    if not folder.is_dir():
        return []
    owners = ctx.tenancy.iso_owners()
    assert grant.principal is not None
    shown = []
    for path in sorted(folder.glob("*.iso")):
        project = owners.get(path.name)
        if path.is_file() and (project is None or visible(grant.principal, project)):
            shown.append(_describe(host, path, project, grant))
    return shown


class TooManyUploads(VmdeckError):
    http_status = 429
    kind = "too_many_uploads"


# Uploads in flight at once per project (key None: an administrator's shared ones): each holds a
# temporary file as large as its upload, so the host's disk bounds them even where no quota does.
MAX_UPLOADS_PER_PROJECT = 2


def _in_flight(request: Request) -> dict[str | None, int]:
    book: dict[str | None, int] | None = getattr(request.app.state, "iso_uploads", None)
    if book is None:
        book = request.app.state.iso_uploads = {}
    return book


def _sees(ctx: AppContext, grant: Grant, name: str) -> bool:
    """Whether the caller may know `name` is in the library: an administrator, a shared ISO, one of its projects'."""
    principal = grant.principal
    if principal is None or principal.admin:
        return True
    owner = ctx.tenancy.iso_owner(name)
    return owner is None or visible(principal, owner)


@router.put("/{name}", status_code=201)
async def isos_upload(name: str, request: Request, host: Host = Depends(request_host),
                      grant: Grant = Depends(grant_of), ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """Upload an ISO 9660 image as the raw request body (streamed to disk, never held in memory), into
    `?project=` (default: yours). Capped by the project's ISO quota (413); a taken name is 409; at most
    MAX_UPLOADS_PER_PROJECT uploads of one project at once (429)."""
    target = iso_path(name)
    # A name the caller can see is refused at once. One of another project's ISOs is not: it answers as a
    # free name would until the upload is complete and checked, and fails only where any upload of a taken
    # name must (publishing it), or a bare PUT would tell a tenant which names other projects use.
    if target.exists() and await anyio.to_thread.run_sync(_sees, ctx, grant, name):
        raise Conflict(f"the ISO library already has {name!r} (delete it first)")
    principal = grant.principal
    assert principal is not None
    # An administrator's upload without ?project= is a shared library ISO, held to no project's quota.
    project = grant.project if not (principal.admin and "project" not in request.query_params) else None
    cap = ctx.settings.max_iso_upload_gib * 2**30
    if project is not None:
        left = await anyio.to_thread.run_sync(lambda: remaining(ctx.accounts.db, host, project, "iso_gib"))
        if left is not None:
            cap = min(cap, left * 2**30)
    quota_note = f" (project {project}'s ISO quota)" if project else ""
    declared_header = request.headers.get("content-length")
    declared = int(declared_header) if declared_header is not None and declared_header.isdigit() else None
    if declared is not None and declared > cap:
        raise TooLarge(f"the upload declares {declared} bytes; at most {int(cap)} may be stored{quota_note}")
    in_flight = _in_flight(request)
    if in_flight.get(project, 0) >= MAX_UPLOADS_PER_PROJECT:
        raise TooManyUploads(f"{MAX_UPLOADS_PER_PROJECT} ISO uploads of "
                             + (f"project {project}" if project else "the shared library")
                             + " are in progress: wait for one to finish")
    in_flight[project] = in_flight.get(project, 0) + 1
    # While it streams, the upload holds its declared size (or, undeclared, all the quota it may use)
    # against the project's ISO quota, so concurrent uploads cannot together pass it in temporary files.
    held = declared if declared is not None else cap
    reservation: contextlib.AbstractContextManager[None] = (
        reserve(ctx.accounts.db, host, project, Demand(iso_gib=held / 2**30), f"iso-upload:{secrets.token_hex(8)}")
        if project is not None else contextlib.nullcontext())
    try:
        try:
            await anyio.to_thread.run_sync(reservation.__enter__)
        except QuotaExceeded as err:  # another upload took the room since `remaining` was read
            raise TooLarge(f"the upload needs {held} bytes; {err.message}") from err
        try:
            # The upload is a task (the page's task list shows its bytes received), published or failed.
            with library_cases.uploading(services_of(ctx), request_actor(request, grant), project, name,
                                         declared) as task:
                await _receive(request, target, name, project, held, quota_note, host, ctx, grant, task)
        finally:
            await anyio.to_thread.run_sync(reservation.__exit__, None, None, None)
    finally:
        in_flight[project] -= 1
    return await anyio.to_thread.run_sync(_describe, host, target, project, grant)


def _private_mode(path: Path) -> None:
    """A project's ISO is readable by QEMU's group only (0640), not by every local user; a shared one
    stays 0644. Without a known QEMU user it is 0600 (libvirt's dynamic ownership hands it to QEMU)."""
    user = qemu_user()
    if user is None:
        os.chmod(path, 0o600)
        return
    try:
        os.chown(path, -1, pwd.getpwnam(user.name).pw_gid)
    except (KeyError, PermissionError):
        os.chmod(path, 0o600)
        return
    os.chmod(path, 0o640)


async def _receive(request: Request, target: Path, name: str, project: str | None, cap: float, quota_note: str,
                   host: Host, ctx: AppContext, grant: Grant, task: Task) -> None:
    """Stream the body into a temporary file, check it, and publish it under `name`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # A per-writer temporary name: two uploads of one name never share a file, and one left by a
    # killed server names its dead writer, so `vmdeck doctor` can tell it from an upload in progress.
    partial = temp_path(target)
    received = 0
    reported = time.monotonic()
    try:
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > cap:
                        raise TooLarge(f"the upload passed {int(cap)} bytes, the most that may be stored{quota_note}")
                    await out.write(chunk)
                    if time.monotonic() - reported >= FLUSH_S:  # the task's row, not once per chunk
                        reported = time.monotonic()
                        await anyio.to_thread.run_sync(task.progress, received, task.total)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise HostError(f"no space left on {target.parent} for {name} "
                                f"(the upload stopped after {received} bytes)") from err
            raise HostError(f"cannot write {name} in {target.parent}: {err.strerror}") from err
        await anyio.to_thread.run_sync(task.progress, received, task.total or received)
        if received == 0:
            raise InvalidInput("the upload is empty (send the ISO as the request body)")
        if not await anyio.to_thread.run_sync(is_iso9660, partial):
            raise InvalidInput("the upload is not an ISO 9660 image (no CD001 volume descriptor at sector 16)")
        if project is None:
            os.chmod(partial, 0o644)  # the shared library: every user may put it in a drive
        else:
            await anyio.to_thread.run_sync(_private_mode, partial)

        def publish() -> None:
            try:
                os.link(partial, target)  # atomic, and never replaces: a name taken meanwhile fails here
            except FileExistsError:
                raise Conflict(f"the ISO library already has {name!r} (delete it first)") from None

        actor = request_actor(request, grant)
        await anyio.to_thread.run_sync(lambda: library_cases.publish(services_of(ctx), actor, host, project, name,
                                                                     received, publish))
    finally:
        partial.unlink(missing_ok=True)


@router.delete("/{name}")
def isos_delete(name: str, host: Host = Depends(request_host), ctx: AppContext = Depends(app_context),
                actor: Actor = Depends(request_actor)) -> dict[str, Any]:
    """Delete an ISO that no VM has in a drive (Conflict naming the VMs otherwise)."""
    target = iso_path(name)
    library_cases.delete_iso(services_of(ctx), actor, target, lambda: iso_users(host, target))
    return {"name": name, "deleted": True}

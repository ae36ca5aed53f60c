"""Import a VM over REST: the package is the request body, streamed to disk; `plan=true` only plans (api layer).

`POST /api/import?filename=web01.ova[&name=&template=&firmware=&disk_bus=&nic_model=&host=&plan=]`
takes an .ova or one disk image (.vmdk, .vhdx, .vhd, .qcow2, .img) as the raw body. It
lands in a folder of its own under vmdeck's data folder (never in the pool, never
under a name the client chose beyond its plain file name), is planned by
vmdeck.vm.importer, and is removed when the request ends, whatever happened.
The import holds the project's quotas (409 quota_exceeded) before a byte of the
VM's disks is written, as `vmdeck import` does.
"""

from __future__ import annotations

import contextlib
import errno
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Query, Request

from vmdeck.api.context import AppContext, app_context, fleet_of, quota_hosts
from vmdeck.api.errors import TooLarge
from vmdeck.api.policy import Grant, grant_of
from vmdeck.errors import HostError, InvalidInput, NotFound
from vmdeck.images.ovf import check_href
from vmdeck.paths import data_dir
from vmdeck.store.quota import Demand, reserve
from vmdeck.store.tasks import Task
from vmdeck.store.tenancy import DEFAULT_PROJECT
from vmdeck.vm.importer import ImportOptions, ImportPlan, import_vm, plan_import
from vmdeck.vm.inventory import show_vm

__all__ = ["router", "staging_dir"]

router = APIRouter(prefix="/api/import", tags=["import"])
_SUFFIXES = (".ova", ".vmdk", ".vhdx", ".vhd", ".qcow2", ".img", ".raw")
_KEEP_FREE = 1 << 30  # an upload never fills the data folder's file system to the last GiB


def staging_dir() -> Path:
    return data_dir() / "imports"


def _upload_name(filename: str) -> str:
    name = check_href(filename)
    if not name.lower().endswith(_SUFFIXES) or name.startswith("."):
        raise InvalidInput(f"filename: upload an {', '.join(_SUFFIXES)} file (an .ovf needs its disks: "
                           "pack them into an .ova)", field="filename")
    return name


def _answer(plan: ImportPlan) -> dict[str, Any]:
    planned = plan.to_dict()
    planned["source"] = plan.source.name  # the server's folders are its own business
    return planned


@router.post("", status_code=201)
async def import_upload(request: Request, filename: str = Query(..., description="The package's file name."),
                        name: str | None = Query(None), template: str | None = Query(None),
                        firmware: str | None = Query(None, pattern="^(bios|uefi)$"),
                        disk_bus: str | None = Query(None, pattern="^(virtio|sata|ide|scsi)$"),
                        nic_model: str | None = Query(None, pattern="^(virtio|e1000|e1000e|rtl8139)$"),
                        plan: bool = Query(False, description="Only plan: answer what would be created."),
                        grant: Grant = Depends(grant_of), ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """Import the VM in the body (an .ova or a disk image); `plan=true` answers the plan and creates nothing."""
    upload = _upload_name(filename)
    if fleet_of(ctx) is not None:
        raise InvalidInput("import converts into this host's pool: several hosts are registered, import on "
                           "the host itself with `vmdeck import`")
    folder = staging_dir() / f"upload-{secrets.token_hex(8)}"
    folder.mkdir(parents=True, mode=0o700)
    try:
        target = folder / upload
        cap = shutil.disk_usage(folder).free - _KEEP_FREE
        received = 0
        try:
            async with await anyio.open_file(target, "xb") as out:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > cap:
                        raise TooLarge(f"the upload passed {max(cap, 0)} bytes, the room left for it on the host")
                    await out.write(chunk)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise HostError(f"no space left for the upload (it stopped after {received} bytes)") from err
            raise
        if received == 0:
            raise InvalidInput("the upload is empty (send the package as the request body)")
        options = ImportOptions(name=name, template=template, firmware=firmware, disk_bus=disk_bus,
                                nic_model=nic_model)
        planned = await anyio.to_thread.run_sync(plan_import, target, options)
        if plan:
            return _answer(planned)
        return await anyio.to_thread.run_sync(_import, ctx, grant, planned)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _task(ctx: AppContext, grant: Grant, project: str, name: str) -> Iterator[Task]:
    """The import as a task of the task list (to move into the import's use case with it)."""
    from vmdeck.api.actors import services_of
    from vmdeck.usecases.actor import ADMIN, Actor
    from vmdeck.usecases.tasks import tracked

    principal = grant.principal
    assert principal is not None
    actor = Actor(user=principal.username, origin="api", role=ADMIN if principal.admin else principal.role_in(project))
    with tracked(services_of(ctx), actor, "vm.import", name, project=project, vm=name) as task:
        yield task


def _import(ctx: AppContext, grant: Grant, plan: ImportPlan) -> dict[str, Any]:
    project = grant.project or DEFAULT_PROJECT
    ctx.tenancy.ensure_project(project)
    host = ctx.host.get()
    if host.exists(plan.spec.name):
        from vmdeck.errors import Conflict

        raise Conflict(f"a VM named {plan.spec.name!r} already exists")
    with reserve(ctx.accounts.db, quota_hosts(ctx, host), project, Demand(**plan.demand_numbers()),
                 f"vm:{plan.spec.name}", on=host), _task(ctx, grant, project, plan.spec.name) as task:
        import_vm(host, plan, progress=task.reporter(), project=project)
        task.result = f"imported {plan.spec.name}"
    try:
        shown = show_vm(host, plan.spec.name).to_dict()
    except NotFound:  # deleted in the meantime by someone else
        shown = {"name": plan.spec.name}
    return {**shown, "imported": _answer(plan)}

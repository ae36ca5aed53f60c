"""REST endpoints for backups (api layer, thin over vm.backup* and store.backups).

A backup belongs to its VM's project (recorded in its manifest): operators back up and
cancel, managers restore, prune and schedule; another project's backup answers 404 like one
that does not exist. The server uses its default repository only (a request never names a
folder). A backup that would pass the project's backup-storage quota is refused (409) before
anything is copied. The router's lifespan runs the backup schedules every minute while
`vmdeck serve` runs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from vmdeck.api.context import AppContext, app_context, quota_hosts, request_host
from vmdeck.api.policy import Grant, grant_of
from vmdeck.errors import Conflict, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.storage.backup_repo import Repository
from vmdeck.usecases.tasks import Task, tracked

__all__ = ["router", "SCHEDULE_TICK_S"]

SCHEDULE_TICK_S = 60.0


@contextlib.asynccontextmanager
async def _scheduler(app: FastAPI) -> AsyncIterator[None]:
    """Run due backup schedules once a minute in a worker thread for as long as the server runs."""
    stop = threading.Event()
    ctx: AppContext | None = getattr(app.state, "ctx", None)

    def loop() -> None:
        from vmdeck.store.backups import run_due

        while not stop.wait(SCHEDULE_TICK_S):
            if ctx is None:
                return
            with contextlib.suppress(VmdeckError):  # libvirtd away: the next tick tries again
                run_due(ctx.accounts.db, ctx.host.get())

    worker = threading.Thread(target=loop, name="backup-schedules", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()


router = APIRouter(tags=["backups"], lifespan=_scheduler)


class CreateBackup(BaseModel):
    full: bool = Field(False, description="Start a new full chain even if an incremental could follow.")
    quiesce: bool = Field(False, description="Freeze the guest's filesystems as it starts (guest agent).")


class RestoreBackup(BaseModel):
    as_name: str | None = Field(None, description="Restore as a new VM of this name; default: in place.")
    force: bool = Field(False, description="In place: power the running VM off and replace it.")


class PruneBackups(BaseModel):
    keep_last: int = Field(ge=1)
    keep_daily: int = Field(0, ge=0)
    keep_weekly: int = Field(0, ge=0)


class ScheduleBackups(BaseModel):
    every: str = Field(description="30m, 6h, 2d, hourly, daily or weekly.")
    keep_last: int = Field(ge=1)
    keep_daily: int = Field(0, ge=0)
    keep_weekly: int = Field(0, ge=0)


def _running(repo: Repository, vm: str) -> list[dict[str, Any]]:
    found = []
    for partial in repo.partials():
        if partial.alive and partial.vm == vm:
            from vmdeck.storage.backup_repo import read_facts

            facts = read_facts(partial.path)
            found.append({"id": partial.backup_id, "done": facts.get("done", 0), "total": facts.get("total", 0)})
    return found


@router.get("/api/vms/{name}/backups")
def backups_list(name: str, grant: Grant = Depends(grant_of), ctx: AppContext = Depends(app_context)
                 ) -> dict[str, Any]:
    """The VM's backups (of its project), the ones running with their progress, and its schedule."""
    from vmdeck.store.backups import schedules

    repo = Repository()
    own = [m.summary() for m in repo.manifests(name) if m.project == grant.project]
    schedule = next((asdict(s) for s in schedules(ctx.accounts.db) if s.vm == name), None)
    return {"backups": own, "running": _running(repo, name), "schedule": schedule}


@router.post("/api/vms/{name}/backups", status_code=201)
def backups_create(name: str, body: CreateBackup, request: Request, host: Host = Depends(request_host),
                   grant: Grant = Depends(grant_of), ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    from vmdeck.store.backups import check_backup_quota
    from vmdeck.vm.backup import create_backup, estimate_bytes

    check_backup_quota(ctx.accounts.db, grant.project, Repository(), estimate_bytes(host, name))
    with _task(request, ctx, grant, "backup.create", name, vm=name) as task:
        made = create_backup(host, name, full=body.full, quiesce=body.quiesce, progress=task.reporter(),
                             on_bytes=task.bytes_reporter())
        task.result = made.message
    return asdict(made)


@contextlib.contextmanager
def _task(request: Request, ctx: AppContext, grant: Grant, kind: str, target: str,
          vm: str | None) -> Iterator[Task]:
    """The backup or restore as a task of the task list (to move into the backups' use case with it)."""
    from vmdeck.api.actors import request_actor, services_of

    with tracked(services_of(ctx), request_actor(request, grant), kind, target, project=grant.project,
                 vm=vm) as task:
        yield task


@router.post("/api/vms/{name}/backups/cancel")
def backups_cancel(name: str) -> dict[str, Any]:
    from vmdeck.vm.backup_ops import cancel_backups

    return {"cancelling": cancel_backups(name)}


@router.post("/api/vms/{name}/backups/prune")
def backups_prune(name: str, body: PruneBackups, grant: Grant = Depends(grant_of)) -> dict[str, Any]:
    from vmdeck.vm.backup_ops import prune_backups

    _own_backups_only(name, grant)
    return asdict(prune_backups(name, keep_last=body.keep_last, keep_daily=body.keep_daily,
                                keep_weekly=body.keep_weekly))


@router.put("/api/vms/{name}/backups/schedule")
def backups_schedule(name: str, body: ScheduleBackups, host: Host = Depends(request_host),
                     ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    from vmdeck.store.backups import parse_every, set_schedule

    return asdict(set_schedule(ctx.accounts.db, name, host.uri, parse_every(body.every), body.keep_last,
                               keep_daily=body.keep_daily, keep_weekly=body.keep_weekly))


@router.delete("/api/vms/{name}/backups/schedule")
def backups_unschedule(name: str, host: Host = Depends(request_host), ctx: AppContext = Depends(app_context)
                       ) -> dict[str, Any]:
    from vmdeck.store.backups import remove_schedule

    remove_schedule(ctx.accounts.db, name, host.uri)
    return {"vm": name, "schedule": None}


def _own_backups_only(name: str, grant: Grant) -> None:
    """Backups of an earlier VM of the same name in another project are not this caller's to prune."""
    if any(m.project != grant.project for m in Repository().manifests(name)):
        raise Conflict(f"some backups named after {name!r} belong to an earlier VM of another project: "
                       "ask an administrator to prune them")


class BackupQuota(BaseModel):
    max_backup_gib: float | None = Field(None, ge=0, description="GiB; null: no limit.")


@router.put("/api/projects/{project}/backup-quota")
def backups_quota(project: str, body: BackupQuota, ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """Set a project's backup-storage quota (administrators); the answer shows what its backups take."""
    from vmdeck.store.backups import backup_quota_gib, project_backup_bytes, set_backup_quota

    set_backup_quota(ctx.accounts.db, project, body.max_backup_gib)
    return {"project": project, "max_backup_gib": backup_quota_gib(ctx.accounts.db, project),
            "used_gib": project_backup_bytes(Repository(), project) / 2**30}


@router.get("/api/backups")
def backups_all(vm: str | None = None, grant: Grant = Depends(grant_of)) -> list[dict[str, Any]]:
    """Every backup the caller may see (of deleted VMs too), oldest first; `?vm=` for one VM's."""
    from vmdeck.api.policy import visible

    principal = grant.principal
    return [m.summary() for m in Repository().manifests(vm)
            if principal is not None and visible(principal, m.project)]


@router.get("/api/backups/{backup_id}")
def backups_show(backup_id: str) -> dict[str, Any]:
    from vmdeck.vm.backup_ops import show_backup

    return show_backup(backup_id)


@router.post("/api/backups/{backup_id}/verify")
def backups_verify(backup_id: str) -> dict[str, Any]:
    from vmdeck.vm.backup_ops import verify_backup

    report = verify_backup(backup_id)
    return {"backup": backup_id, "ok": report.ok, "checked": report.checked, "problems": report.problems,
            "message": report.message}


@router.post("/api/backups/{backup_id}/restore")
def backups_restore(backup_id: str, body: RestoreBackup, request: Request, grant: Grant = Depends(grant_of),
                    ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """Restore in place (the VM must be off, or `force`), or as a new VM in the backup's project within its
    quotas."""
    from vmdeck.domxml.parse import parse_domain
    from vmdeck.store.quota import Demand, reserve
    from vmdeck.vm.backup_restore import restore_backup
    from vmdeck.vm.project import project_of, set_project

    manifest = Repository().load(backup_id)
    host = ctx.host.get()
    target = body.as_name or manifest.vm
    if body.as_name is None and host.exists(target) and project_of(host, target) != manifest.project:
        raise Conflict(f"VM {target!r} is not the VM this backup was taken of: restore it --as a new VM")
    with _task(request, ctx, grant, "backup.restore", target, vm=target) as task:
        if body.as_name is None or grant.project is None:
            made = restore_backup(host, backup_id, as_name=body.as_name, force=body.force,
                                  progress=task.reporter())
        else:
            view = parse_domain(manifest.domain_xml)
            demand = Demand(instances=1, vcpus=view.vcpus, memory_mib=view.memory_mib,
                            disk_gib=sum(f.virtual_size for f in manifest.disks()) / 2**30)
            with reserve(ctx.accounts.db, quota_hosts(ctx, host), grant.project, demand, f"vm:{body.as_name}",
                         on=host):
                made = restore_backup(host, backup_id, as_name=body.as_name, progress=task.reporter())
                set_project(host, body.as_name, grant.project)
        task.result = made.message
    return asdict(made)

"""REST endpoints for backups (api layer): changes through vmdeck.usecases.backups (as `vmdeck backup`), reads
thin over vm.backup_ops and store.backups.

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
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, Field

from vmdeck.api.actors import request_actor, request_services
from vmdeck.api.context import AppContext, app_context, fleet_of, request_host
from vmdeck.api.policy import Grant, grant_of
from vmdeck.errors import NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.storage.backup_repo import Repository
from vmdeck.usecases import Actor, Services, backups

__all__ = ["router", "SCHEDULE_TICK_S"]

SCHEDULE_TICK_S = 60.0


@contextlib.asynccontextmanager
async def _scheduler(app: FastAPI) -> AsyncIterator[None]:
    """Run due backup schedules once a minute in a worker thread for as long as the server runs."""
    stop = threading.Event()
    ctx: AppContext | None = getattr(app.state, "ctx", None)

    def loop() -> None:
        from vmdeck.api.actors import services_of
        from vmdeck.usecases import Actor
        from vmdeck.usecases.backups import run_due

        while not stop.wait(SCHEDULE_TICK_S):
            if ctx is None:
                return
            with contextlib.suppress(VmdeckError):  # libvirtd away: the next tick tries again
                run_due(services_of(ctx), Actor.schedule("backup schedules"), ctx.host.get())

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
    host: str | None = Field(None, description="Registered host to restore onto; default: this server's.")


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
def backups_create(name: str, body: CreateBackup, host: Host = Depends(request_host),
                   actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                   ) -> dict[str, Any]:
    return asdict(backups.create(services, actor, host, name, full=body.full, quiesce=body.quiesce))


@router.post("/api/vms/{name}/backups/cancel")
def backups_cancel(name: str, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
                   services: Services = Depends(request_services)) -> dict[str, Any]:
    return {"cancelling": backups.cancel(services, actor, host, name)}


@router.post("/api/vms/{name}/backups/prune")
def backups_prune(name: str, body: PruneBackups, host: Host = Depends(request_host),
                  actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                  ) -> dict[str, Any]:
    report = backups.prune(services, actor, host, name, keep_last=body.keep_last, keep_daily=body.keep_daily,
                           keep_weekly=body.keep_weekly)
    return {**asdict(report), "message": report.message}  # what `vmdeck backup prune` prints


@router.put("/api/vms/{name}/backups/schedule")
def backups_schedule(name: str, body: ScheduleBackups, host: Host = Depends(request_host),
                     actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                     ) -> dict[str, Any]:
    return asdict(backups.schedule(services, actor, host, name, every=body.every, keep_last=body.keep_last,
                                   keep_daily=body.keep_daily, keep_weekly=body.keep_weekly))


@router.delete("/api/vms/{name}/backups/schedule")
def backups_unschedule(name: str, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
                       services: Services = Depends(request_services)) -> dict[str, Any]:
    backups.unschedule(services, actor, host, name)
    return {"vm": name, "schedule": None}


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


def _restore_host(ctx: AppContext, name: str | None) -> Host:
    """The registered host `name` (this server's own host when none is named)."""
    fleet = fleet_of(ctx)
    if name is None or (fleet is None and name == "local"):
        return ctx.host.get()
    if fleet is None:
        raise NotFound(f"no registered host named {name!r}")
    return fleet.host(name)


@router.post("/api/backups/{backup_id}/restore")
def backups_restore(backup_id: str, body: RestoreBackup, ctx: AppContext = Depends(app_context),
                    actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                    ) -> dict[str, Any]:
    """Restore in place (the VM must be off, or `force`), or as a new VM in the backup's project within its
    quotas."""
    return asdict(backups.restore(services, actor, _restore_host(ctx, body.host), backup_id, as_name=body.as_name,
                                  force=body.force))

"""Backups of a VM: take, cancel, prune, schedule, restore, export and import (use-case layer).

`vmdeck backup ...`, `vmdeck export|import-backup`, the REST API (/api/vms/{name}/backups...,
/api/backups/{id}/restore) and the server's schedule all call these; the backup itself is vmdeck.vm.backup*.

A backup belongs to its VM's project (its manifest records it): an operator takes and cancels one, a
manager prunes, schedules and restores (the API policy's backup.* needs). A backup is checked against the
project's backup-storage quota before anything is copied; a restore as a new VM is charged like a create
(instances, vCPUs, memory, the disks' virtual sizes) in the backup's project.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from vmdeck.errors import Conflict, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.store.quota import Demand
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.common import Progress, quiet
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.quota import held
from vmdeck.usecases.services import Services
from vmdeck.usecases.tasks import tracked

if TYPE_CHECKING:
    from vmdeck.storage.backup_repo import Manifest
    from vmdeck.store.backups import Schedule
    from vmdeck.vm.backup import BackupResult
    from vmdeck.vm.backup_export import ImportResult
    from vmdeck.vm.backup_ops import PruneReport
    from vmdeck.vm.backup_restore import RestoreResult

__all__ = ["create", "cancel", "prune", "schedule", "unschedule", "run_due", "restore", "export", "import_backup",
           "restore_demand"]

Repo = str | Path | None


def _vm_project(svc: Services, actor: Actor, action: str, host: Host, name: str, repo: Repo) -> str | None:
    """The project whose backups of `name` these are: the VM's; for a VM deleted since (its backups stay), the
    project its newest backup recorded."""
    if actor.project_known or host.exists(name):
        return project_of_vm(svc, actor, action, host, name)
    from vmdeck.storage.backup_repo import Repository

    found = Repository(repo).manifests(name)
    return found[-1].project if found else None


@contextlib.contextmanager
def _on_vm(svc: Services, actor: Actor, action: str, host: Host, name: str, repo: Repo, *,
           status: int = 200) -> Iterator[str | None]:
    project = _vm_project(svc, actor, action, host, name, repo)
    with audited(svc, actor, action, project, name, status=status):
        authorize(actor, action, project)
        yield project


def _check_quota(svc: Services, host: Host, name: str, project: str | None, repo: Repo) -> None:
    """The project's backup-storage quota for a backup of `name`, before anything is copied."""
    from vmdeck.storage.backup_repo import Repository
    from vmdeck.store.backups import check_backup_quota
    from vmdeck.vm.backup import estimate_bytes

    check_backup_quota(svc.db, project, Repository(repo), estimate_bytes(host, name, repo=repo))


def create(svc: Services, actor: Actor, host: Host, name: str, *, repo: Repo = None, full: bool = False,
           quiesce: bool = False, progress: Progress = quiet) -> BackupResult:
    """Back up VM `name`: incremental when its chain can continue; refused up front past the backup quota."""
    from vmdeck.vm.backup import create_backup

    with _on_vm(svc, actor, "backup.create", host, name, repo, status=201) as project:
        _check_quota(svc, host, name, project, repo)
        with tracked(svc, actor, "backup.create", name, project=project, vm=name) as task:
            result = create_backup(host, name, repo=repo, full=full, quiesce=quiesce,
                                   progress=task.reporter(progress), on_bytes=task.bytes_reporter())
            task.result = result.message
    return result


def cancel(svc: Services, actor: Actor, host: Host, name: str | None, *, repo: Repo = None) -> list[str]:
    """Stop the running backups of `name` (None: every one, administrators); the ids asked."""
    from vmdeck.vm.backup_ops import cancel_backups

    if name is None:
        with audited(svc, actor, "backup.create", None, None):
            authorize(actor, "host.manage", None)  # every project's backups: the host's administrator
            asked = cancel_backups(None, repo=repo)
        return asked
    with _on_vm(svc, actor, "backup.create", host, name, repo):
        asked = cancel_backups(name, repo=repo)
    return asked


def prune(svc: Services, actor: Actor, host: Host, name: str, *, keep_last: int, keep_daily: int = 0,
          keep_weekly: int = 0, repo: Repo = None, progress: Progress = quiet) -> PruneReport:
    """Remove old backups of `name`. Backups of an earlier VM of the same name in another project are not a
    project member's to prune (an administrator's only)."""
    from vmdeck.storage.backup_repo import Repository
    from vmdeck.vm.backup_ops import prune_backups

    with _on_vm(svc, actor, "backup.manage", host, name, repo) as project:
        if not actor.admin and any(m.project != project for m in Repository(repo).manifests(name)):
            raise Conflict(f"some backups named after {name!r} belong to an earlier VM of another project: "
                           "ask an administrator to prune them")
        report = prune_backups(name, keep_last=keep_last, keep_daily=keep_daily, keep_weekly=keep_weekly,
                               repo=repo, progress=progress)
    return report


def schedule(svc: Services, actor: Actor, host: Host, name: str, *, every: str, keep_last: int, keep_daily: int = 0,
             keep_weekly: int = 0, repo: Repo = None) -> Schedule:
    """Back `name` up every `every` (30m, 6h, daily ...), keeping the newest `keep_last` (pruned after each)."""
    from vmdeck.store.backups import parse_every, set_schedule

    with _on_vm(svc, actor, "backup.manage", host, name, repo):
        host.lookup(name)  # NotFound now, not at the first run
        made = set_schedule(svc.db, name, host.uri, parse_every(every), keep_last, keep_daily=keep_daily,
                            keep_weekly=keep_weekly, repo=None if repo is None else str(repo))
    return made


def unschedule(svc: Services, actor: Actor, host: Host, name: str) -> None:
    from vmdeck.store.backups import remove_schedule

    with _on_vm(svc, actor, "backup.manage", host, name, None):
        remove_schedule(svc.db, name, host.uri)


def run_due(svc: Services, actor: Actor, host: Host, *, force: bool = False, progress: Progress = quiet) -> list[str]:
    """Take the scheduled backups of `host` that are due (all with `force`), each pruned after: each backup
    and each prune is its own use case, audited as `actor` (the schedule, or root's `backup run-due`)."""
    from vmdeck.store.backups import run_due as due

    def take(plan: Schedule) -> str:
        made = create(svc, actor, host, plan.vm, repo=plan.repo, progress=progress)
        pruned = prune(svc, actor, host, plan.vm, keep_last=plan.keep_last, keep_daily=plan.keep_daily,
                       keep_weekly=plan.keep_weekly, repo=plan.repo, progress=progress)
        return f"{made.message}; {pruned.message}"

    return due(svc.db, host, take, force=force)


def restore_demand(manifest: Manifest) -> Demand:
    """A restore as a new VM: the VM (instances, vCPUs, memory) and its disks at their virtual sizes."""
    from vmdeck.domxml.parse import parse_domain

    view = parse_domain(manifest.domain_xml)
    return Demand(instances=1, vcpus=view.vcpus, memory_mib=view.memory_mib,
                  disk_gib=round(sum(f.virtual_size for f in manifest.disks()) / 2**30, 6))


def _manifest(svc: Services, actor: Actor, backup_id: str, vm: str | None, repo: Repo) -> Manifest:
    """The backup's manifest; one that cannot be read is a refusal logged without a project, as the API's
    policy logs a backup it cannot see."""
    from vmdeck.storage.backup_repo import Repository

    try:
        return Repository(repo).load(backup_id)
    except VmdeckError as missing:
        svc.audit.record(actor.user, actor.via or actor.origin, None, "backup.restore", vm, actor.target,
                         missing.http_status, f"refused: {missing.message}")
        actor.recorded = True
        raise


def restore(svc: Services, actor: Actor, host: Host, backup_id: str, *, as_name: str | None = None,
            force: bool = False, repo: Repo = None, progress: Progress = quiet) -> RestoreResult:
    """Restore in place (the VM must be off, or `force`, and be the VM the backup was taken of), or as a new
    VM in the backup's project within its quotas."""
    from vmdeck.vm.backup_restore import restore_backup
    from vmdeck.vm.project import project_of, set_project

    manifest = _manifest(svc, actor, backup_id, as_name, repo)
    project = actor.project if actor.project_known else manifest.project
    target = as_name or manifest.vm
    with audited(svc, actor, "backup.restore", project, target):
        authorize(actor, "backup.restore", project)
        if as_name is None or as_name == manifest.vm:
            if host.exists(target) and project_of(host, target) != manifest.project:
                raise Conflict(f"VM {target!r} is not the VM this backup was taken of: restore it --as a new VM")
            with tracked(svc, actor, "backup.restore", target, project=project, vm=target) as task:
                made = restore_backup(host, backup_id, repo=repo, as_name=as_name, force=force,
                                      progress=task.reporter(progress))
                task.result = made.message
            return made
        with held(svc, host, project, lambda: restore_demand(manifest), f"vm:{as_name}"), \
                tracked(svc, actor, "backup.restore", target, project=project, vm=target) as task:
            made = restore_backup(host, backup_id, repo=repo, as_name=as_name, progress=task.reporter(progress))
            if project is not None:
                set_project(host, as_name, project)
            task.result = made.message
    return made


def export(svc: Services, actor: Actor, host: Host, name: str, output: str | Path, *,
           progress: Progress = quiet) -> str:
    """VM `name` as one portable file at `output` (a full backup; a host path: the host's administrator)."""
    from vmdeck.vm.backup_export import export_vm

    with _on_vm(svc, actor, "backup.export", host, name, None):
        message = export_vm(host, name, output, progress=progress)
    return message


def import_backup(svc: Services, actor: Actor, host: Host, file: str | Path, *, repo: Repo = None,
                  as_name: str | None = None, restore_it: bool = True, progress: Progress = quiet) -> ImportResult:
    """Add an exported backup to the repository (every file checked; a host path: the host's administrator),
    then restore it through `restore` (charged and audited as any restore)."""
    from vmdeck.vm.backup_export import ImportResult
    from vmdeck.vm.backup_export import import_backup as add

    with audited(svc, actor, "backup.import", None, as_name, status=201):
        authorize(actor, "backup.import", None)
        added = add(host, file, repo=repo, as_name=as_name, restore=False, progress=progress)
    if not restore_it:
        return added
    restored = restore(svc, actor, host, added.backup, as_name=as_name, repo=repo, progress=progress)
    return ImportResult(added.backup, restored, f"{added.message}; {restored.message}")

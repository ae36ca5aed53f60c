"""Snapshots and clones of a VM, charged to its project before they use anything (use-case layer)."""

from __future__ import annotations

import dataclasses
import secrets

from vmdeck.host.connection import Host
from vmdeck.store.quota import reserve
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.charges import clone_demand, snapshot_demand
from vmdeck.usecases.common import Progress, quiet
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.services import Services
from vmdeck.usecases.tasks import tracked
from vmdeck.vm.clone import CloneResult
from vmdeck.vm.snapshot_ops import SnapshotResult

__all__ = ["create_snapshot", "revert_snapshot", "delete_snapshot", "clone"]


def create_snapshot(svc: Services, actor: Actor, host: Host, name: str, snap: str | None = None, *,
                    description: str = "", memory: bool = False, quiesce: bool = False,
                    progress: Progress = quiet) -> SnapshotResult:
    """A snapshot: its overlays (each as large as its disk may grow) and memory state are charged first."""

    project = project_of_vm(svc, actor, "vm.snapshot", host, name)
    with audited(svc, actor, "vm.snapshot", project, name, status=201):
        authorize(actor, "vm.snapshot", project)
        with tracked(svc, actor, "vm.snapshot", name, project=project, vm=name) as task:
            result = _take(svc, host, name, snap, project, description, memory, quiesce, task.reporter(progress))
            task.result = result.message
    return result


def _take(svc: Services, host: Host, name: str, snap: str | None, project: str | None, description: str,
          memory: bool, quiesce: bool, report: Progress) -> SnapshotResult:
    """The snapshot itself, within the project's quota (a VM outside any project: none)."""
    from vmdeck.vm import snapshot_ops

    def take() -> SnapshotResult:
        return snapshot_ops.create_snapshot(host, name, snap, description=description, memory=memory,
                                            quiesce=quiesce, progress=report)

    if project is None:
        return take()
    demand = snapshot_demand(host, name, memory=memory)
    with reserve(svc.db, svc.counted_on(host), project, demand, f"snapshot:{name}:{secrets.token_hex(4)}", on=host):
        return take()


def revert_snapshot(svc: Services, actor: Actor, host: Host, name: str, snap: str, *,
                    progress: Progress = quiet) -> SnapshotResult:
    from vmdeck.vm import snapshot_ops

    project = project_of_vm(svc, actor, "vm.snapshot", host, name)
    with audited(svc, actor, "vm.snapshot", project, name):
        authorize(actor, "vm.snapshot", project)
        result = snapshot_ops.revert_snapshot(host, name, snap, progress=progress)
    return result


def delete_snapshot(svc: Services, actor: Actor, host: Host, name: str, snap: str, *,
                    progress: Progress = quiet) -> SnapshotResult:
    from vmdeck.vm import snapshot_ops

    project = project_of_vm(svc, actor, "vm.snapshot", host, name)
    with audited(svc, actor, "vm.snapshot", project, name):
        authorize(actor, "vm.snapshot", project)
        result = snapshot_ops.delete_snapshot(host, name, snap, progress=progress)
    return result


def clone(svc: Services, actor: Actor, host: Host, source: str, new: str, *, linked: bool = False,
          start: bool = False, progress: Progress = quiet) -> CloneResult:
    """A full or linked clone in the source's project, within its quotas: a linked clone is charged the
    source's snapshot and its own overlays, a full clone the copies of the disks."""
    from vmdeck.vm import lifecycle
    from vmdeck.vm.clone import clone_vm
    from vmdeck.vm.project import set_project

    project = project_of_vm(svc, actor, "vm.clone", host, source)
    with audited(svc, actor, "vm.clone", project, source, status=201):
        authorize(actor, "vm.clone", project)
        with tracked(svc, actor, "vm.clone", new, project=project, vm=new) as task:
            progress = task.reporter(progress)
            if project is None:  # a VM outside any project (administrators): the clone is outside too
                made = clone_vm(host, source, new, linked=linked, start=False, progress=progress)
            else:
                demand = clone_demand(host, source, linked=linked)
                with reserve(svc.db, svc.counted_on(host), project, demand, f"vm:{new}", on=host):
                    made = clone_vm(host, source, new, linked=linked, start=False, progress=progress)
                    set_project(host, new, project)
            if start:
                progress(f"starting {new}")
                lifecycle.start(host, new)
                made = dataclasses.replace(made, message=made.message + ", started")
            task.result = made.message
    return made

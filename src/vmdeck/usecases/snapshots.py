"""Snapshots and clones of a VM, charged to its project before they use anything (use-case layer)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from typing import TypeVar

from vmdeck.host.connection import Host
from vmdeck.store.quota import Demand
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.charges import clone_demand, revert_demand, snapshot_demand
from vmdeck.usecases.common import Progress, quiet
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.quota import held
from vmdeck.usecases.services import Services
from vmdeck.usecases.tasks import tracked
from vmdeck.vm.clone import CloneResult
from vmdeck.vm.snapshot_ops import SnapshotResult

__all__ = ["create_snapshot", "revert_snapshot", "delete_snapshot", "clone"]

T = TypeVar("T")


def _charged(svc: Services, actor: Actor, host: Host, name: str, action: str, demand: Callable[[], Demand] | None,
             what: str, do: Callable[[Progress], T], *, progress: Progress, status: int = 200,
             after: Callable[[str | None], None] | None = None, task: str | None = None) -> T:
    """The one shape of every snapshot and clone: policy, then `demand()` held for `what` while `do` runs
    (nothing held without a quota, vmdeck.usecases.quota), `after` (given the project) still inside the hold,
    all inside the audit line. With `task` (what it makes), the operation is also a task of the task list."""
    project = project_of_vm(svc, actor, action, host, name)
    with audited(svc, actor, action, project, name, status=status):
        authorize(actor, action, project)
        with held(svc, host, project, demand, what):
            if task is None:
                result = do(progress)
                if after is not None:
                    after(project)
                return result
            with tracked(svc, actor, action, task, project=project, vm=task) as running:
                result = do(running.reporter(progress))
                if after is not None:
                    after(project)
                running.result = getattr(result, "message", None)
    return result


def create_snapshot(svc: Services, actor: Actor, host: Host, name: str, snap: str | None = None, *,
                    description: str = "", memory: bool = False, quiesce: bool = False,
                    progress: Progress = quiet) -> SnapshotResult:
    """A snapshot: its overlays (each as large as its disk may grow) and memory state are charged first."""
    from vmdeck.vm import snapshot_ops

    return _charged(svc, actor, host, name, "vm.snapshot", lambda: snapshot_demand(host, name, memory=memory),
                    f"snapshot:{name}:{secrets.token_hex(4)}",
                    lambda report: snapshot_ops.create_snapshot(host, name, snap, description=description,
                                                                memory=memory, quiesce=quiesce, progress=report),
                    progress=progress, status=201, task=name)


def revert_snapshot(svc: Services, actor: Actor, host: Host, name: str, snap: str, *,
                    progress: Progress = quiet) -> SnapshotResult:
    """Back to `snap`: its fresh overlays are charged like a snapshot's while they are made."""
    from vmdeck.vm import snapshot_ops

    return _charged(svc, actor, host, name, "vm.snapshot", lambda: revert_demand(host, name, snap),
                    f"snapshot:{name}:{secrets.token_hex(4)}",
                    lambda report: snapshot_ops.revert_snapshot(host, name, snap, progress=report),
                    progress=progress)


def delete_snapshot(svc: Services, actor: Actor, host: Host, name: str, snap: str, *,
                    progress: Progress = quiet) -> SnapshotResult:
    from vmdeck.vm import snapshot_ops

    return _charged(svc, actor, host, name, "vm.snapshot", None, f"snapshot:{name}:{secrets.token_hex(4)}",
                    lambda report: snapshot_ops.delete_snapshot(host, name, snap, progress=report),
                    progress=progress)


def clone(svc: Services, actor: Actor, host: Host, source: str, new: str, *, linked: bool = False,
          start: bool = False, progress: Progress = quiet) -> CloneResult:
    """A full or linked clone in the source's project, within its quotas: a linked clone is charged the
    source's snapshot and its own overlays, a full clone the copies of the disks."""
    from vmdeck.vm import lifecycle
    from vmdeck.vm.clone import clone_vm
    from vmdeck.vm.project import set_project

    def into(project: str | None) -> None:
        if project is not None:  # a VM outside any project (administrators): the clone is outside too
            set_project(host, new, project)
        if start:
            progress(f"starting {new}")
            lifecycle.start(host, new)

    made = _charged(svc, actor, host, source, "vm.clone", lambda: clone_demand(host, source, linked=linked),
                    f"vm:{new}", lambda report: clone_vm(host, source, new, linked=linked, start=False,
                                                         progress=report),
                    progress=progress, status=201, after=into, task=new)
    return dataclasses.replace(made, message=made.message + ", started") if start else made

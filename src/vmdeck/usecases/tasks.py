"""The task of a long use case: who runs it, on what, how far it got (use-case layer).

    with tracked(svc, actor, "vm.clone", new, project=project, vm=new) as task:
        made = clone_vm(..., progress=task.reporter(progress))

records the operation in the task list (vmdeck.store.tasks) whichever door it came through, with the
actor's user and origin; the caller's own progress callback still gets every line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from vmdeck.store.tasks import Task, Tasks
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.services import Services

__all__ = ["tracked", "Task"]


@contextlib.contextmanager
def tracked(svc: Services, actor: Actor, kind: str, target: str, *, project: str | None = None,
            vm: str | None = None) -> Iterator[Task]:
    """The body as one task of `kind` ("vm.create", "backup.create" ...) on `target` in `project`."""
    with Tasks(svc.db).track(kind=kind, target=target, user=actor.user, origin=actor.origin, project=project,
                             vm=vm) as task:
        yield task

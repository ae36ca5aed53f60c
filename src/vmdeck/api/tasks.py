"""`GET /api/tasks` and `GET /api/tasks/{id}`: the task list (vmdeck.store.tasks) and its push on the event
stream (api layer).

A signed-in user sees the tasks of the projects they have a role in, administrators every task (those
about no project too: image builds, shared ISOs). Another project's task answers 404, as a missing one.
Changes reach browsers as {"type": "task", "task": {...}} messages on /api/events (`Feed`): this server's
own at once, and, read once a second while someone watches, those of the CLI or another server sharing
the database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request

from vmdeck.api.hostpaths import hide_host_paths
from vmdeck.api.policy import Grant, grant_of, visible
from vmdeck.errors import NotFound, VmdeckError
from vmdeck.store.accounts import Principal
from vmdeck.store.tasks import Tasks, on_change

__all__ = ["router", "Feed", "FEED_INTERVAL_S"]

log = logging.getLogger("vmdeck.api.tasks")

router = APIRouter(prefix="/api/tasks", tags=["tasks"])

FEED_INTERVAL_S = 1.0
# A change is looked for this far back again: a row written while the last look ran is not missed.
_OVERLAP_S = 3.0

State = Literal["queued", "running", "done", "failed", "cancelled"]


def _tasks(request: Request) -> Tasks:
    return Tasks(request.app.state.ctx.accounts.db)


def _projects(principal: Principal) -> list[str] | None:
    """The projects whose tasks the caller sees (None: all, an administrator)."""
    return None if principal.admin else principal.projects()


@router.get("")
def tasks_list(request: Request, state: State | None = Query(None, description="Only tasks in this state."),
               vm: str | None = Query(None, max_length=200, description="Only this VM's tasks."),
               mine: bool = Query(False, description="Only the tasks you started."),
               limit: int = Query(50, ge=1, le=500),
               before_id: int | None = Query(None, ge=1, le=2**63 - 1, description="Page: tasks older than this id."),
               grant: Grant = Depends(grant_of)) -> list[dict[str, Any]]:
    """Recent tasks, newest first: kind, target, user, state, progress (`done` of `total` when known),
    start, end, duration and result or error line (the log: `GET /api/tasks/{id}`)."""
    principal = grant.principal
    assert principal is not None  # "signed-in"
    projects = _projects(principal)
    if projects == []:
        return []
    return _tasks(request).entries(projects, state=state, vm=vm, user=principal.username if mine else None,
                                   limit=limit, before_id=before_id)


@router.get("/{task_id}")
def tasks_show(request: Request, task_id: int, grant: Grant = Depends(grant_of)) -> dict[str, Any]:
    """One task with its log (its last lines, oldest first)."""
    principal = grant.principal
    assert principal is not None
    task = _tasks(request).get(task_id) if 0 < task_id < 2**63 else None
    if task is None or not visible(principal, task["project"]):
        raise NotFound(f"no task {task_id}")
    return task


# The stream is not rewritten for tenants as /api/ answers are (vmdeck.api.hostpaths): a task's words go
# out with host paths cut to their last component, for everyone (the list's answer has them whole for
# administrators).
_OWN = frozenset({"api", "static", "vms"})


def message(task: dict[str, Any]) -> dict[str, Any]:
    """A task change as the event stream carries it. `vm` and `project` are what the stream's filter
    (vmdeck.api.events.for_principal) reads: a task is seen by whoever sees its project."""
    shown = {**task, "target": hide_host_paths(task["target"], _OWN),
             "result": hide_host_paths(task["result"], _OWN) if task["result"] else task["result"]}
    return {"type": "task", "task": shown, "vm": task["vm"] or task["target"], "project": task["project"]}


class Feed:
    """Each task change onto `hub` (vmdeck.api.events.EventHub), once: those this server writes at once
    (vmdeck.store.tasks.on_change), the others (the CLI, other servers) by reading the store every
    FEED_INTERVAL_S while someone watches."""

    def __init__(self, hub: Any, tasks: Tasks) -> None:
        self.hub = hub
        self.tasks = tasks
        self._seen: dict[int, tuple[Any, ...]] = {}
        self._lock = threading.Lock()
        self._remove = on_change(tasks.db, self.push)

    def push(self, task: dict[str, Any]) -> None:
        key = (task["state"], task["done"], task["total"], task["updated"])
        with self._lock:
            if self._seen.get(task["id"]) == key:
                return
            self._seen[task["id"]] = key
        self.hub.publish(message(task))

    async def run(self, interval: float = FEED_INTERVAL_S) -> None:
        since = time.time()
        try:
            while True:
                await asyncio.sleep(interval)
                if not self.hub.watching:
                    since = time.time()
                    continue
                look = time.time()
                try:
                    changed = await anyio.to_thread.run_sync(self.tasks.changed_since, since - _OVERLAP_S)
                except VmdeckError as error:  # the database away for a moment: the next look catches up
                    log.warning("task list not read: %s", error)
                    continue
                except Exception:  # noqa: BLE001 (a dropped PostgreSQL connection: the same)
                    log.exception("task list not read")
                    continue
                for task in changed:
                    self.push(task)
                with self._lock:  # what fell out of the window is never read again unless it changes
                    current = {task["id"] for task in changed}
                    self._seen = {k: v for k, v in self._seen.items() if k in current}
                since = look
        finally:
            self._remove()

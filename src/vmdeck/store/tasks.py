"""The task list: every long operation recorded with its progress, outcome and a short log (store layer).

A use case runs its work inside `Tasks.track(...)` (vmdeck.usecases.tasks wraps it with the actor):

    with tasks.track(kind="vm.clone", target="web02", user="alice", origin="api", project="p1") as task:
        task.log("copying vda")
        task.progress(done, total)

The row is written when the operation starts (state "running") and when it ends ("done" with its result,
"failed" with the error line, "cancelled"); progress and log lines in between are written at most every
FLUSH_S, so a fast progress callback costs no more than a few writes a second. The row names the
process running it (vmdeck.store.lease.owner): a process of this machine that died leaves its tasks
"running", and `fail_orphans` (the server's start, `vmdeck task list`) marks them failed.

Readers: `GET /api/tasks` (vmdeck.api.tasks), the page's task panel, `vmdeck task list|show`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from vmdeck.errors import VmdeckError
from vmdeck.store.db import TaskRow, affected, utcnow
from vmdeck.store.lease import owner

__all__ = ["STATES", "ACTIVE", "FLUSH_S", "LOG_LINES", "SERVER_STOPPED", "Task", "Tasks", "Cancelled",
           "task_dict", "on_change"]

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
FLUSH_S = 0.5  # progress and log lines reach the database at most this often (and at the end)
LOG_LINES = 200  # the log keeps its last lines: enough to see what happened, never a growing blob
LINE_CHARS = 300
SERVER_STOPPED = "the server stopped"

# Progress lines the core already prints, read as numbers: "copied 120 MiB of 512 MiB", "vda: 40%".
_OF = re.compile(r"(\d+(?:\.\d+)?) ?(?:[KMG]iB)? of (\d+(?:\.\d+)?) ?(?:[KMG]iB)?\b")
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)%\s*$")


# Who hears of each change written by this process, per database (the server's event stream: a task is on
# the page the moment it starts; changes by other processes reach it by vmdeck.api.tasks.feed's reads).
_LISTENERS: list[tuple[str, Callable[[dict[str, Any]], None]]] = []
_LISTENERS_LOCK = threading.Lock()


def _database(db: sessionmaker[Session]) -> str:
    return str(db.kw.get("bind").url) if db.kw.get("bind") is not None else ""  # type: ignore[union-attr]


def on_change(db: sessionmaker[Session], listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
    """Call `listener` with each task this process writes to `db` (from the writing thread); the remover."""
    entry = (_database(db), listener)
    with _LISTENERS_LOCK:
        _LISTENERS.append(entry)

    def remove() -> None:
        with _LISTENERS_LOCK, contextlib.suppress(ValueError):
            _LISTENERS.remove(entry)

    return remove


class Cancelled(VmdeckError):
    """Raised inside a tracked operation to end it as "cancelled" rather than "failed"."""


@dataclass
class Task:
    """One running operation's handle: its id, progress and log, written back by its Tasks."""

    id: int
    _store: Tasks
    _done: int | None = None
    _total: int | None = None
    _lines: list[str] = field(default_factory=list)
    _dirty: bool = False
    _flushed: float = 0.0
    result: str | None = None  # what the operation answers (set by the caller: "created web02 ...")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total(self) -> int | None:
        return self._total

    def progress(self, done: int, total: int | None) -> None:
        """`done` of `total` (bytes, percent, steps: the panel shows the fraction); None total: unknown."""
        with self._lock:
            self._done, self._total = int(done), (int(total) if total else None)
            self._dirty = True
        self._maybe_flush()

    def log(self, line: str) -> None:
        text = " ".join(str(line).split())[:LINE_CHARS]
        if not text:
            return
        with self._lock:
            self._lines.append(f"{time.strftime('%H:%M:%S', time.gmtime())} {text}")
            del self._lines[:-LOG_LINES]
            self._dirty = True
        self._maybe_flush()

    def reporter(self, forward: Callable[[str], None] | None = None) -> Callable[[str], None]:
        """A use case's progress callback that logs each line here (and reads a fraction from lines like
        "copied 12 MiB of 40 MiB" or "vda: 40%"), then hands it on to the caller's own callback."""
        def report(line: str) -> None:
            self.log(line)
            fraction = _OF.search(line)
            if fraction:
                self.progress(int(float(fraction.group(1))), int(float(fraction.group(2))))
            else:
                percent = _PERCENT.search(line)
                if percent:
                    self.progress(int(float(percent.group(1))), 100)
            if forward is not None:
                forward(line)

        return report

    def bytes_reporter(self) -> Callable[[int, int], None]:
        """A (done, total) callback, for the core's byte counters (backups)."""
        return lambda done, total: self.progress(done, total)

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if not self._dirty or now - self._flushed < FLUSH_S:
            return
        self._store._write(self.id, self._pending(now))

    def _pending(self, now: float) -> dict[str, Any]:
        """The progress and log to write, taken as written."""
        with self._lock:
            self._dirty = False
            self._flushed = now
            return {"done": self._done, "total": self._total, "log": "\n".join(self._lines), "updated": time.time()}


def task_dict(row: TaskRow, *, with_log: bool = False) -> dict[str, Any]:
    """A task as the API, the panel and `vmdeck task` show it: times in UTC ISO 8601, the duration in seconds
    (until now while it runs)."""
    end = row.ended_at or utcnow()
    shown: dict[str, Any] = {
        "id": row.id, "kind": row.kind, "target": row.target, "vm": row.vm, "project": row.project,
        "user": row.username, "origin": row.origin, "state": row.state, "done": row.done, "total": row.total,
        "started_at": row.started_at.isoformat() + "Z",
        "ended_at": row.ended_at.isoformat() + "Z" if row.ended_at else None,
        "duration_s": round(max(0.0, (end - row.started_at).total_seconds()), 1),
        "result": row.result, "updated": row.updated}
    if with_log:
        shown["log"] = row.log.splitlines() if row.log else []
    return shown


class Tasks:
    """The tasks of one database."""

    def __init__(self, db: sessionmaker[Session]) -> None:
        self.db = db

    @contextlib.contextmanager
    def track(self, *, kind: str, target: str, user: str, origin: str, project: str | None = None,
              vm: str | None = None) -> Iterator[Task]:
        """Record the body as one task: "running" now, then "done", "failed" (the error's line) or
        "cancelled" (Cancelled, or a KeyboardInterrupt of the command); the exception goes on."""
        task = self.begin(kind=kind, target=target, user=user, origin=origin, project=project, vm=vm)
        try:
            yield task
        except Cancelled as stopped:
            self.finish(task, "cancelled", stopped.message)
            raise
        except KeyboardInterrupt:
            self.finish(task, "cancelled", "interrupted")
            raise
        except VmdeckError as error:
            self.finish(task, "failed", error.message)
            raise
        except BaseException as error:
            if type(error).__name__ == "CancelledError":  # asyncio's: the client went away mid-upload
                self.finish(task, "cancelled", "the client went away")
            else:
                self.finish(task, "failed", f"internal error ({type(error).__name__})")
            raise
        else:
            self.finish(task, "done", task.result or "done")

    def begin(self, *, kind: str, target: str, user: str, origin: str, project: str | None = None,
              vm: str | None = None) -> Task:
        with self.db.begin() as s:
            row = TaskRow(kind=kind[:32], target=target[:200], vm=vm[:200] if vm else None, project=project,
                          username=user[:64], origin=origin[:16], state="running", started_at=utcnow(),
                          updated=time.time(), log="", owner=owner())
            s.add(row)
            s.flush()
            task_id = row.id
        self._tell(task_id)
        # The first lines wait for the flush interval too: a short task is two writes, its start and its end.
        return Task(task_id, self, _flushed=time.monotonic())

    def finish(self, task: Task, state: str, result: str) -> None:
        """The end, with the last progress and log lines, in one write."""
        if state == "done" and task._total and task._done != task._total:
            task._done = task._total  # a finished task is whole, whatever the last line said
        self._write(task.id, {**task._pending(time.monotonic()), "state": state,
                              "result": " ".join(result.split())[:300], "ended_at": utcnow()})

    def _write(self, task_id: int, values: dict[str, Any]) -> None:
        with self.db.begin() as s:
            s.execute(update(TaskRow).where(TaskRow.id == task_id).values(**values))
        self._tell(task_id)

    def _tell(self, task_id: int) -> None:
        with _LISTENERS_LOCK:
            listeners = [fn for where, fn in _LISTENERS if where == _database(self.db)]
        if not listeners:
            return
        with self.db() as s:
            row = s.get(TaskRow, task_id)
            shown = task_dict(row) if row is not None else None
        for listener in listeners:
            if shown is not None:
                with contextlib.suppress(Exception):  # a listener's trouble is never the operation's
                    listener(shown)

    # --- reading -----------------------------------------------------------------------------------
    def entries(self, projects: list[str] | None, *, state: str | None = None, vm: str | None = None,
             user: str | None = None, limit: int = 50, before_id: int | None = None) -> list[dict[str, Any]]:
        """Newest first. `projects` None: every task (administrators); else only those projects' tasks."""
        query = select(TaskRow).order_by(TaskRow.id.desc()).limit(limit)
        if projects is not None:
            query = query.where(TaskRow.project.in_(projects))
        if state is not None:
            query = query.where(TaskRow.state == state)
        if vm is not None:
            query = query.where(TaskRow.vm == vm)
        if user is not None:
            query = query.where(TaskRow.username == user)
        if before_id is not None:
            query = query.where(TaskRow.id < before_id)
        with self.db() as s:
            return [task_dict(row) for row in s.scalars(query).all()]

    def get(self, task_id: int) -> dict[str, Any] | None:
        with self.db() as s:
            row = s.get(TaskRow, task_id)
            return task_dict(row, with_log=True) if row is not None else None

    def changed_since(self, since: float) -> list[dict[str, Any]]:
        """Tasks written at or after `since` (epoch seconds), oldest change first: the event push's source."""
        with self.db() as s:
            rows = s.scalars(select(TaskRow).where(TaskRow.updated >= since).order_by(TaskRow.updated)).all()
            return [task_dict(row) for row in rows]

    def fail_orphans(self) -> int:
        """Mark failed ("the server stopped") the running tasks of processes of this machine that are gone:
        a server or command killed mid-operation. Other machines' tasks are theirs to settle."""
        here = owner().split(":", 1)[0] + ":"
        with self.db.begin() as s:
            owners = s.scalars(select(TaskRow.owner).distinct().where(
                TaskRow.state.in_(ACTIVE), TaskRow.owner.startswith(here, autoescape=True))).all()
            dead = [o for o in owners if not _alive(o)]
            if not dead:
                return 0
            return affected(s.execute(update(TaskRow).where(TaskRow.owner.in_(dead), TaskRow.state.in_(ACTIVE))
                                      .values(state="failed", result=SERVER_STOPPED, ended_at=utcnow(),
                                              updated=time.time())))

    def prune(self, older_than_days: float) -> int:
        """Forget ended tasks older than `older_than_days`; how many went."""
        from sqlalchemy import delete

        cutoff = utcnow() - dt.timedelta(days=older_than_days)
        with self.db.begin() as s:
            return affected(s.execute(delete(TaskRow).where(TaskRow.ended_at.is_not(None),
                                                            TaskRow.ended_at < cutoff)))


def _alive(process: str) -> bool:
    """Is the process named by an owner string (machine:pid:random) still there? Unknown: assume so."""
    try:
        os.kill(int(process.split(":")[1]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, IndexError):
        return True
    return True

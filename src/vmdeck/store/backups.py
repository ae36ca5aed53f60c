"""Backups in the control plane: the backup-storage quota and backup schedules (store layer).

What a project's backups take is counted in the repository (its manifests are the catalogue's
truth); only the limit lives here (`projects.max_backup_gib`, NULL: none). A backup that would
go past it is refused before anything is copied.

Schedules (`vmdeck backup schedule VM --every 6h --keep 7`) are rows here; `run_due` takes the
backups that are due and prunes after each, from `vmdeck serve` (every minute) or from
`vmdeck backup run-due` (a cron job on a host without a server).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from vmdeck.errors import InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.storage.backup_repo import Repository
from vmdeck.store.quota import QuotaExceeded

__all__ = ["backup_quota_gib", "set_backup_quota", "check_backup_quota", "project_backup_bytes", "Schedule",
           "parse_every", "set_schedule", "remove_schedule", "schedules", "run_due"]

GiB = 2**30


def backup_quota_gib(db: sessionmaker[Session], project: str) -> float | None:
    with db() as session:
        row = session.execute(text("SELECT max_backup_gib FROM projects WHERE name = :p"), {"p": project}).fetchone()
    if row is None:
        raise NotFound(f"no project named {project!r}")
    return None if row[0] is None else float(row[0])


def set_backup_quota(db: sessionmaker[Session], project: str, gib: float | None) -> None:
    if gib is not None and gib < 0:
        raise InvalidInput("a backup quota is 0 GiB or more", field="max_backup_gib")
    with db.begin() as session:
        done = session.execute(text("UPDATE projects SET max_backup_gib = :g WHERE name = :p"),
                               {"g": gib, "p": project})
    if not getattr(done, "rowcount", 1):
        raise NotFound(f"no project named {project!r}")


def project_backup_bytes(repo: Repository, project: str) -> int:
    return sum(m.total_bytes for m in repo.manifests() if m.project == project)


def check_backup_quota(db: sessionmaker[Session], project: str | None, repo: Repository, need_bytes: int) -> None:
    """QuotaExceeded (409) when `need_bytes` more would take `project` past its backup-storage quota."""
    if project is None:
        return
    try:
        limit = backup_quota_gib(db, project)
    except NotFound:
        return  # a project the database does not know (a VM tagged by hand): no quota to hold
    if limit is None:
        return
    used = project_backup_bytes(repo, project)
    if used + need_bytes > limit * GiB:
        raise QuotaExceeded(project, "backup_gib", limit, round(used / GiB, 3), round(need_bytes / GiB, 3))


# -- schedules -------------------------------------------------------------------------------------

_EVERY = re.compile(r"^(?P<n>\d+)(?P<unit>[mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}


def parse_every(every: str) -> int:
    """"6h", "30m", "2d", "daily", "weekly" -> seconds."""
    named = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400}
    if every in named:
        return named[every]
    match = _EVERY.match(every.strip())
    if match is None or int(match.group("n")) == 0:
        raise InvalidInput(f"--every {every!r}: say 30m, 6h, 2d, hourly, daily or weekly", field="every")
    seconds = int(match.group("n")) * _UNIT_S[match.group("unit")]
    if seconds < 300:
        raise InvalidInput("--every: backups at most every 5 minutes", field="every")
    return seconds


@dataclass(frozen=True)
class Schedule:
    vm: str
    uri: str
    repo: str | None
    every_s: int
    keep_last: int
    keep_daily: int
    keep_weekly: int
    last_run: float | None
    last_result: str | None

    def due(self, now: float) -> bool:
        return self.last_run is None or now - self.last_run >= self.every_s


def set_schedule(db: sessionmaker[Session], vm: str, uri: str, every_s: int, keep_last: int, *, keep_daily: int = 0,
                 keep_weekly: int = 0, repo: str | None = None) -> Schedule:
    if keep_last < 1:
        raise InvalidInput("--keep must be at least 1", field="keep")
    with db.begin() as session:
        session.execute(text(
            "INSERT INTO backup_schedules (vm, uri, repo, every_s, keep_last, keep_daily, keep_weekly) "
            "VALUES (:vm, :uri, :repo, :every, :keep, :daily, :weekly) ON CONFLICT (vm, uri) DO UPDATE SET "
            "repo = :repo, every_s = :every, keep_last = :keep, keep_daily = :daily, keep_weekly = :weekly"),
            {"vm": vm, "uri": uri, "repo": repo, "every": every_s, "keep": keep_last, "daily": keep_daily,
             "weekly": keep_weekly})
    return next(s for s in schedules(db) if s.vm == vm and s.uri == uri)


def remove_schedule(db: sessionmaker[Session], vm: str, uri: str) -> None:
    with db.begin() as session:
        done = session.execute(text("DELETE FROM backup_schedules WHERE vm = :vm AND uri = :uri"),
                               {"vm": vm, "uri": uri})
    if not getattr(done, "rowcount", 1):
        raise NotFound(f"VM {vm!r} has no backup schedule")


def schedules(db: sessionmaker[Session]) -> list[Schedule]:
    with db() as session:
        rows = session.execute(text("SELECT vm, uri, repo, every_s, keep_last, keep_daily, keep_weekly, last_run, "
                                    "last_result FROM backup_schedules ORDER BY vm")).fetchall()
    return [Schedule(*row) for row in rows]


def _mark(db: sessionmaker[Session], schedule: Schedule, when: float, result: str) -> None:
    with db.begin() as session:
        session.execute(text("UPDATE backup_schedules SET last_run = :t, last_result = :r "
                             "WHERE vm = :vm AND uri = :uri"),
                        {"t": when, "r": result[:1000], "vm": schedule.vm, "uri": schedule.uri})


def run_due(db: sessionmaker[Session], host: Host, *, now: float | None = None, force: bool = False,
            progress: Callable[[str], None] = lambda _m: None) -> list[str]:
    """Back up (then prune) every VM of `host` whose schedule is due; one line per VM, failures included."""
    from vmdeck.store.tasks import Tasks
    from vmdeck.vm.backup import create_backup, estimate_bytes
    from vmdeck.vm.backup_ops import prune_backups
    from vmdeck.vm.project import project_of

    when = time.time() if now is None else now
    done = []
    for schedule in schedules(db):
        if schedule.uri != host.uri or not (force or schedule.due(when)):
            continue
        try:
            repo = Repository(Path(schedule.repo) if schedule.repo else None)
            project = project_of(host, schedule.vm)
            check_backup_quota(db, project, repo, estimate_bytes(host, schedule.vm))
            # A task of the task list, as a backup asked for by someone is (vmdeck.store.tasks).
            with Tasks(db).track(kind="backup.create", target=schedule.vm, user="vmdeck", origin="schedule",
                                 project=project, vm=schedule.vm) as task:
                made = create_backup(host, schedule.vm, repo=schedule.repo, progress=task.reporter(progress),
                                     on_bytes=task.bytes_reporter())
                task.result = made.message
            pruned = prune_backups(schedule.vm, keep_last=schedule.keep_last, keep_daily=schedule.keep_daily,
                                   keep_weekly=schedule.keep_weekly, repo=schedule.repo, progress=progress)
            line = f"{made.message}; {pruned.message}"
        except VmdeckError as err:
            line = f"backup of {schedule.vm} failed: {err}"
        _mark(db, schedule, when, line)
        done.append(line)
    return done

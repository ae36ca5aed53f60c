"""The audit log's store: every state-changing action with who, when, what, which VM and the outcome (store layer).

Written by vmdeck.api.policy.enforce (the API) and by the administrator's CLI;
read through `GET /api/audit` (vmdeck.api.audit), the audit page and `vmdeck audit`.
Free of FastAPI so that the CLI can use it cheaply.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from vmdeck.store.db import AuditEntry, affected, utcnow

__all__ = ["Audit"]


class Audit:
    def __init__(self, db: sessionmaker[Session]) -> None:
        self.db = db

    def record(self, username: str, via: str, project: str | None, action: str, vm: str | None,
               target: str | None, status: int, result: str) -> None:
        with self.db.begin() as s:
            s.add(AuditEntry(username=username, via=via, project=project, action=action, vm=vm,
                             target=(target or "")[:300] or None, status=status, result=result[:300]))

    def entries(self, projects: list[str] | None, *, vm: str | None = None, limit: int = 100,
                before_id: int | None = None, username: str | None = None, action: str | None = None,
                since: dt.datetime | None = None, until: dt.datetime | None = None,
                per_project: bool = False) -> list[dict[str, Any]]:
        """Newest first. `projects` None: every entry (administrators); else only those projects'.
        `action` matches an action ("vm.power") or its area ("vm"); `since`/`until` are UTC, naive.

        `per_project`: number the entries within their own project (1, 2, ... in each), and read
        `before_id` in those numbers: a tenant learns nothing of the other projects' activity from
        the gaps of a global sequence.
        """
        wanted: dict[str, Any] = {"vm": vm, "username": username, "action": action, "since": since, "until": until}
        if per_project and projects is not None:
            return self._numbered(projects, limit=limit, before=before_id, **wanted)
        query = _filtered(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit), **wanted)
        if projects is not None:
            query = query.where(AuditEntry.project.in_(projects))
        if before_id is not None:
            query = query.where(AuditEntry.id < before_id)
        with self.db() as s:
            return [_row(e) for e in s.scalars(query).all()]

    def _numbered(self, projects: list[str], *, limit: int, before: int | None, **wanted: Any) -> list[dict[str, Any]]:
        seq = func.row_number().over(partition_by=AuditEntry.project, order_by=AuditEntry.id).label("seq")
        numbered = select(AuditEntry.id.label("entry_id"), seq).where(AuditEntry.project.in_(projects)).subquery()
        query = _filtered(select(AuditEntry, numbered.c.seq).join(numbered, numbered.c.entry_id == AuditEntry.id)
                          .order_by(AuditEntry.id.desc()).limit(limit), **wanted)
        if before is not None:
            query = query.where(numbered.c.seq < before)
        with self.db() as s:
            return [{**_row(e), "id": int(number)} for e, number in s.execute(query).all()]

    def prune(self, older_than_days: float) -> int:
        """Delete entries older than `older_than_days` (the administrator's retention); how many went."""
        cutoff = utcnow() - dt.timedelta(days=older_than_days)
        with self.db.begin() as s:
            return affected(s.execute(delete(AuditEntry).where(AuditEntry.at < cutoff)))

    def for_user(self, username: str, limit: int = 100) -> list[dict[str, Any]]:
        with self.db() as s:
            rows = s.scalars(select(AuditEntry).where(AuditEntry.username == username)
                             .order_by(AuditEntry.id.desc()).limit(limit)).all()
            return [_row(e) for e in rows]


def _row(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "at": e.at.isoformat() + "Z", "user": e.username, "via": e.via, "project": e.project,
            "action": e.action, "vm": e.vm, "target": e.target, "status": e.status, "result": e.result}


def _filtered(query: Any, *, vm: str | None, username: str | None, action: str | None, since: dt.datetime | None,
              until: dt.datetime | None) -> Any:
    """`query` narrowed to one VM, one user, an action or its area, a time window (each when given)."""
    if vm is not None:
        query = query.where(AuditEntry.vm == vm)
    if username is not None:
        query = query.where(AuditEntry.username == username)
    if action is not None:
        query = query.where((AuditEntry.action == action) | AuditEntry.action.startswith(f"{action}.", autoescape=True))
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return query

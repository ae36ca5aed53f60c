"""The audit log's store: every state-changing action with who, when, what, which VM and the outcome (store layer).

Written by vmdeck.api.policy.enforce (the API) and by the administrator's CLI;
read through `GET /api/audit` (vmdeck.api.audit), the audit page and `vmdeck audit`.
Free of FastAPI so that the CLI can use it cheaply.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select
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
                since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Newest first. `projects` None: every entry (administrators); else only those projects'.
        `action` matches an action ("vm.power") or its area ("vm"); `since`/`until` are UTC, naive."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if projects is not None:
            query = query.where(AuditEntry.project.in_(projects))
        if vm is not None:
            query = query.where(AuditEntry.vm == vm)
        if username is not None:
            query = query.where(AuditEntry.username == username)
        if action is not None:
            query = query.where((AuditEntry.action == action) | AuditEntry.action.startswith(f"{action}.",
                                                                                              autoescape=True))
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        if until is not None:
            query = query.where(AuditEntry.at < until)
        if before_id is not None:
            query = query.where(AuditEntry.id < before_id)
        with self.db() as s:
            return [_row(e) for e in s.scalars(query).all()]

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

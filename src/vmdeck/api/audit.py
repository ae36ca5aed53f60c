"""`GET /api/audit`: the audit log (vmdeck.store.auditlog) for project managers (their projects)
and administrators (everything) (api layer)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from vmdeck.api.policy import Grant, grant_of
from vmdeck.store.auditlog import Audit

__all__ = ["router"]


router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("")
def audit_list(request: Request, project: str | None = Query(None, description="Only this project."),
               vm: str | None = Query(None, description="Only this VM."),
               limit: int = Query(100, ge=1, le=1000), before_id: int | None = Query(None, ge=1, le=2**63 - 1),
               user: str | None = Query(None, max_length=64, description="Only this user's actions."),
               action: str | None = Query(None, max_length=64, description="Only this action (vm.power) or area (vm)."),
               since: dt.datetime | None = Query(None, description="From this time on (ISO 8601; UTC unless it says)."),
               until: dt.datetime | None = Query(None, description="Before this time (ISO 8601; UTC unless it says)."),
               grant: Grant = Depends(grant_of)) -> list[dict[str, Any]]:
    """State-changing actions, newest first: administrators see all, managers their projects' (others: none).

    Managers' entries are numbered within each project (`id`, and `before_id` to page), not in the
    host's global sequence."""
    principal = grant.principal
    assert principal is not None  # "signed-in" rule
    projects: list[str] | None = None if principal.admin else principal.projects("manager")
    if project is not None:
        projects = [project] if projects is None or project in projects else []
    if projects == []:
        return []
    audit: Audit = request.app.state.ctx.audit
    return audit.entries(projects, vm=vm, limit=limit, before_id=before_id, username=user, action=action,
                         since=_utc(since), until=_utc(until), per_project=not principal.admin)


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """The store keeps naive UTC times: an aware time is converted, a naive one taken as UTC."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)

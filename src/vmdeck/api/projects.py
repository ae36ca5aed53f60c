"""REST endpoints for projects (usage against quotas, members) and the user list (api layer).

Members see their projects; administrators create, change and delete them.
Who may call what is in vmdeck.api.policy.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from vmdeck.api.context import AppContext, app_context, quota_hosts, request_host
from vmdeck.api.policy import Grant, grant_of
from vmdeck.host.connection import Host
from vmdeck.store.quota import project_vms, usage_report

__all__ = ["router"]

router = APIRouter(tags=["projects"])


class Quota(BaseModel):
    """Limits; a missing field keeps its limit, null removes it."""

    instances: int | None = Field(None, ge=0, le=100000)
    vcpus: int | None = Field(None, ge=0, le=1000000)
    memory_mib: int | None = Field(None, ge=0, le=1 << 40)
    disk_gib: float | None = Field(None, ge=0, le=1 << 30)
    iso_gib: float | None = Field(None, ge=0, le=1 << 30)
    networks: int | None = Field(None, ge=0, le=100000)
    forwards: int | None = Field(None, ge=0, le=100000)


class NewProject(BaseModel):
    name: str = Field(max_length=63)
    quota: Quota = Field(default_factory=lambda: Quota())


class Member(BaseModel):
    role: str = Field(description="viewer, operator or manager")


def _show(ctx: AppContext, host: Host, name: str, role: str | None) -> dict[str, Any]:
    info = ctx.tenancy.project(name)
    report = usage_report(ctx.accounts.db, quota_hosts(ctx, host), name)
    body = {"name": info.name, "role": role, **report}
    if role == "manager" or role is None:  # None: an administrator
        body["members"] = info.members
    return body


@router.get("/api/projects")
def projects_list(grant: Grant = Depends(grant_of), ctx: AppContext = Depends(app_context)) -> list[dict[str, Any]]:
    """The projects the caller belongs to (administrators: all), with the caller's role."""
    principal = grant.principal
    assert principal is not None
    names = ctx.tenancy.project_names() if principal.admin else principal.projects()
    return [{"name": n, "role": principal.role_in(n) or ("admin" if principal.admin else None)} for n in names]


@router.get("/api/projects/{project}")
def projects_show(project: str, grant: Grant = Depends(grant_of), ctx: AppContext = Depends(app_context),
                  host: Host = Depends(request_host)) -> dict[str, Any]:
    """Usage against each quota (limit null: unlimited) summed over every host, each host's share (`hosts`: how
    it was counted, see vmdeck.store.quota), the project's VMs, and (managers) its members."""
    principal = grant.principal
    assert principal is not None
    role = principal.role_in(project)
    return _show(ctx, host, project, None if principal.admin and role is None else role)


@router.post("/api/projects", status_code=201)
def projects_create(body: NewProject, ctx: AppContext = Depends(app_context),
                    host: Host = Depends(request_host)) -> dict[str, Any]:
    ctx.tenancy.create_project(body.name, body.quota.model_dump(exclude_unset=True))
    return _show(ctx, host, body.name, None)


@router.patch("/api/projects/{project}")
def projects_set_quota(project: str, body: Quota, ctx: AppContext = Depends(app_context),
                       host: Host = Depends(request_host)) -> dict[str, Any]:
    ctx.tenancy.set_quota(project, body.model_dump(exclude_unset=True))
    return _show(ctx, host, project, None)


@router.delete("/api/projects/{project}")
def projects_delete(project: str, ctx: AppContext = Depends(app_context),
                    host: Host = Depends(request_host)) -> dict[str, Any]:
    ctx.tenancy.project(project)  # NotFound first
    ctx.tenancy.delete_project(project, project_vms(ctx.accounts.db, quota_hosts(ctx, host), project))
    return {"name": project, "deleted": True}


@router.put("/api/projects/{project}/members/{username}")
def members_set(project: str, username: str, body: Member, ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    ctx.tenancy.set_member(username, project, body.role)
    ctx.accounts.forget_cached()
    return {"project": project, "username": username, "role": body.role}


@router.delete("/api/projects/{project}/members/{username}")
def members_remove(project: str, username: str, ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    ctx.tenancy.remove_member(username, project)
    ctx.accounts.forget_cached()
    return {"project": project, "username": username, "removed": True}


@router.get("/api/users")
async def users_list(request: Request) -> list[dict[str, Any]]:
    """Every account with its projects and roles (administrators only)."""
    ctx: AppContext = request.app.state.ctx
    return await anyio.to_thread.run_sync(ctx.tenancy.users)

"""REST endpoints for virtual networks (api layer): a project's managers create and delete their project's
networks, its members see them; administrators see and manage every network. Another project's network
answers exactly like one that does not exist (404), as VMs do."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from vmdeck.api.context import AppContext, app_context
from vmdeck.api.errors import Forbidden
from vmdeck.api.policy import Grant, grant_of, may, visible
from vmdeck.domxml.network import NetworkView
from vmdeck.errors import NotFound
from vmdeck.store.quota import network_room
from vmdeck.vm import networks

__all__ = ["router"]

router = APIRouter(prefix="/api/networks", tags=["networks"])


class NewNetwork(BaseModel):
    name: str = Field(max_length=48, description="Network name (letters, digits, '.', '_', '-').")
    mode: str = Field("nat", description="nat | isolated | routed | open.")
    subnet: str = Field(max_length=32, description="Private IPv4 subnet, e.g. 10.20.0.0/24.")
    dhcp_range: str | None = Field(None, max_length=64, description="FIRST-LAST (default: the subnet's upper half).")
    project: str | None = Field(None, max_length=64, description="Owning project (default: your only project).")


class NewReservation(BaseModel):
    vm: str = Field(max_length=64)
    ip: str | None = Field(None, max_length=15)


def _principal(grant: Grant) -> Any:
    if grant.principal is None:
        raise Forbidden("sign in first")
    return grant.principal


def _seen(grant: Grant, ctx: AppContext, name: str, need: str = "viewer") -> NetworkView:
    """The network, if the caller may see it (404 otherwise) and has `need` in its project (403)."""
    principal = _principal(grant)
    view = networks.show_network(ctx.host.get(), name)
    if not principal.admin:
        if not view.vmdeck or view.project is None or not visible(principal, view.project):
            raise NotFound(f"no network named {name!r}")
        if not may(principal, need, view.project):
            raise Forbidden(f"managing network {name!r} needs the {need} role in project {view.project}")
    return view


@router.get("")
def networks_list(grant: Grant = Depends(grant_of), ctx: AppContext = Depends(app_context)) -> list[dict[str, Any]]:
    """The networks you may see: every one for administrators, your projects' for members."""
    principal = _principal(grant)
    views = networks.list_networks(ctx.host.get())
    if not principal.admin:
        views = [v for v in views if v.vmdeck and v.project is not None and visible(principal, v.project)]
    return [dataclasses.asdict(v) for v in views]


@router.post("", status_code=201)
def networks_create(body: NewNetwork, grant: Grant = Depends(grant_of),
                    ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """Create a network owned by a project (managers of the project, or administrators)."""
    principal = _principal(grant)
    project = body.project
    if project is None and not principal.admin:
        mine = principal.projects()
        project = mine[0] if len(mine) == 1 else None
    if not principal.admin and (project is None or not may(principal, "manager", project)):
        raise Forbidden("creating a network needs the manager role in its project (name it: project)")
    host = ctx.host.get()
    if project is None:
        view = networks.create_network(host, body.name, mode=body.mode, subnet=body.subnet,
                                       dhcp_range=body.dhcp_range)
    else:  # the project's `networks` quota, checked before anything exists
        ctx.tenancy.ensure_project(project)
        with network_room(ctx.accounts.db, host, project):
            view = networks.create_network(host, body.name, mode=body.mode, subnet=body.subnet,
                                           dhcp_range=body.dhcp_range, project=project)
    return dataclasses.asdict(view)


@router.get("/{network}")
def networks_show(network: str, grant: Grant = Depends(grant_of),
                  ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    view = _seen(grant, ctx, network)
    return {**dataclasses.asdict(view), "vms": networks.network_users(ctx.host.get(), network)}


@router.delete("/{network}")
def networks_delete(network: str, grant: Grant = Depends(grant_of),
                    ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    _seen(grant, ctx, network, "manager")
    networks.delete_network(ctx.host.get(), network)
    return {"name": network, "deleted": True}


@router.post("/{network}/reservations", status_code=201)
def networks_reserve(network: str, body: NewReservation, grant: Grant = Depends(grant_of),
                     ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """A fixed address for a VM's NIC on this network (a static DHCP lease)."""
    view = _seen(grant, ctx, network, "manager")
    host = ctx.host.get()
    principal = _principal(grant)
    from vmdeck.vm.project import project_of

    if not principal.admin and project_of(host, body.vm) != view.project:
        raise NotFound(f"no VM named {body.vm!r} on {host.uri}")
    return dataclasses.asdict(networks.reserve(host, network, body.vm, body.ip))

"""REST endpoints for virtual networks (api layer): a project's managers create and delete their project's
networks, its members see them; administrators see and manage every network. Another project's network
answers exactly like one that does not exist (404), as VMs do. Changes go through vmdeck.usecases.networks
(as `vmdeck network` does)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from vmdeck.api.actors import request_actor, request_services
from vmdeck.api.context import AppContext, app_context
from vmdeck.api.errors import Forbidden
from vmdeck.api.policy import Grant, grant_of, may, visible
from vmdeck.domxml.network import NetworkView
from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.store.accounts import Principal
from vmdeck.usecases import Actor, Services
from vmdeck.usecases import networks as network_cases
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
    """The networks you may see: every one for administrators; for members, their projects' and the libvirt
    networks an administrator allowed those projects (`allowed`). Each with the VMs on it you may see, and
    whether you may delete it (`can_manage`)."""
    principal = _principal(grant)
    host = ctx.host.get()
    views = networks.list_networks(host)
    allowed: set[str] = set()
    if not principal.admin:
        for project in principal.projects():
            allowed |= set(ctx.tenancy.networks(project))
        views = [v for v in views if (v.vmdeck and v.project is not None and visible(principal, v.project))
                 or v.name in allowed]
    users = _users_by_network(host, principal)
    return [{**dataclasses.asdict(v), "vms": users.get(v.name, []),
             "allowed": v.name in allowed and not (v.vmdeck and v.project is not None and visible(principal, v.project)),
             "can_manage": principal.admin or (v.vmdeck and v.project is not None
                                               and may(principal, "manager", v.project))}
            for v in views]


def _users_by_network(host: Host, principal: Principal) -> dict[str, list[str]]:
    """Network name -> the VMs with a NIC on it (saved or running definition) that the caller may see."""
    from vmdeck.domxml.network import nic_networks
    from vmdeck.errors import VmdeckError
    from vmdeck.vm.project import domain_project

    found: dict[str, list[str]] = {}
    for dom in host.conn.domains():
        try:
            if not principal.admin and not visible(principal, domain_project(dom)):
                continue
            on = nic_networks(dom.xml()) | (nic_networks(dom.xml(inactive=True)) if dom.is_persistent() else set())
        except VmdeckError:  # gone meanwhile
            continue
        for name in on:
            found.setdefault(name, []).append(dom.name)
    return {name: sorted(vms) for name, vms in found.items()}


@router.post("", status_code=201)
def networks_create(body: NewNetwork, grant: Grant = Depends(grant_of), ctx: AppContext = Depends(app_context),
                    actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                    ) -> dict[str, Any]:
    """Create a network owned by a project (managers of the project, or administrators)."""
    principal = _principal(grant)
    project = body.project
    if project is None and not principal.admin:
        mine = principal.projects()
        project = mine[0] if len(mine) == 1 else None
    view = network_cases.create(services, actor, ctx.host.get(), body.name, mode=body.mode, subnet=body.subnet,
                                dhcp_range=body.dhcp_range, project=project)
    return dataclasses.asdict(view)


@router.get("/{network}")
def networks_show(network: str, grant: Grant = Depends(grant_of),
                  ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    view = _seen(grant, ctx, network)
    return {**dataclasses.asdict(view), "vms": networks.network_users(ctx.host.get(), network)}


@router.delete("/{network}")
def networks_delete(network: str, ctx: AppContext = Depends(app_context), actor: Actor = Depends(request_actor),
                    services: Services = Depends(request_services)) -> dict[str, Any]:
    network_cases.delete(services, actor, ctx.host.get(), network)
    return {"name": network, "deleted": True}


@router.post("/{network}/reservations", status_code=201)
def networks_reserve(network: str, body: NewReservation, ctx: AppContext = Depends(app_context),
                     actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                     ) -> dict[str, Any]:
    """A fixed address for a VM's NIC on this network (a static DHCP lease)."""
    return dataclasses.asdict(network_cases.reserve(services, actor, ctx.host.get(), network, body.vm, body.ip))

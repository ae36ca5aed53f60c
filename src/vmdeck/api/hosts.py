"""REST endpoints for the host registry: list with capacity, add, remove, drain, undrain (api layer).

Changes go through vmdeck.usecases.hosts, as `vmdeck host add|remove|drain|undrain` do; the list is vmdeck.cluster's.
Who may do what is vmdeck.api.policy's table ("host.manage": administrators).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from vmdeck.api.actors import request_actor, services_of
from vmdeck.api.context import AppContext, app_context
from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.inventory import HostReport, host_reports
from vmdeck.cluster.registry import HostEntry, Registry
from vmdeck.usecases import Actor
from vmdeck.usecases import hosts as host_cases

__all__ = ["router"]

router = APIRouter(prefix="/api/hosts", tags=["hosts"])


class NewHost(BaseModel):
    name: str = Field(description="Short name (lower-case letters, digits, '.', '_', '-').")
    uri: str = Field(description="libvirt URI, e.g. qemu+ssh://host2/system.")
    vcpu_ratio: float = Field(4.0, description="vCPUs that may be allocated per physical CPU.")
    reserve_mib: int = Field(512, description="Memory kept for the host itself (MiB).")
    check: bool = Field(True, description="Refuse a host that does not answer now.")


class DrainRequest(BaseModel):
    timeout: float | None = Field(None, gt=0, le=86400, description="Cancel any one live migration after this "
                                                                    "many seconds.")


def _registry(ctx: AppContext) -> Registry:
    return ctx.fleet.registry if ctx.fleet is not None else Registry(ctx.settings.location())


def _fleet(ctx: AppContext) -> Fleet:
    return ctx.fleet if ctx.fleet is not None else Fleet(registry=_registry(ctx))


@router.get("", response_model=list[HostReport])
def hosts_list(ctx: AppContext = Depends(app_context)) -> list[dict[str, Any]]:
    """Every registered host: reachable or why not, capacity and what is allocated, versions, KVM."""
    return [asdict(row) for row in host_reports(_fleet(ctx))]


@router.post("", status_code=201)
def hosts_add(body: NewHost, ctx: AppContext = Depends(app_context), actor: Actor = Depends(request_actor)
              ) -> dict[str, Any]:
    entry = HostEntry(body.name, body.uri, body.vcpu_ratio, body.reserve_mib)
    return asdict(host_cases.add_host(services_of(ctx), actor, _registry(ctx), entry, check=body.check))


@router.delete("/{host}")
def hosts_remove(host: str, ctx: AppContext = Depends(app_context), actor: Actor = Depends(request_actor)
                 ) -> dict[str, Any]:
    """Forget a host (its VMs keep running there)."""
    return {**asdict(host_cases.remove_host(services_of(ctx), actor, _registry(ctx), host)), "removed": True}


@router.post("/{host}/drain")
def hosts_drain(host: str, body: DrainRequest | None = None, ctx: AppContext = Depends(app_context),
                actor: Actor = Depends(request_actor)) -> dict[str, Any]:
    """Mark the host draining and move every VM off it, one at a time; progress on the event stream."""
    hub = ctx.events

    def progress(line: str) -> None:
        if hub is not None:
            hub.publish({"type": "drain", "host": host, "line": line})

    report = host_cases.drain(services_of(ctx), actor, _fleet(ctx), _registry(ctx), host,
                              timeout=body.timeout if body else None, progress=progress)
    return {"host": host, "moved": report.moved, "failed": report.failed, "complete": report.complete}


@router.post("/{host}/undrain")
def hosts_undrain(host: str, ctx: AppContext = Depends(app_context), actor: Actor = Depends(request_actor)
                  ) -> dict[str, Any]:
    return asdict(host_cases.undrain(services_of(ctx), actor, _registry(ctx), host))

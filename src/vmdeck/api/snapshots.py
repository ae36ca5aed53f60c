"""REST endpoints for snapshots and clones of a VM (api layer, thin over vmdeck.usecases.snapshots).

Reverting and deleting change disks: the web UI asks for confirmation; the API
does what it is told, with the same checks as the CLI (409 for a wrong state,
404 for an unknown snapshot, 422 for a bad name or a raw disk).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from vmdeck.api.actors import request_actor, request_services
from vmdeck.api.context import request_host
from vmdeck.host.connection import Host
from vmdeck.usecases import Actor, Services
from vmdeck.usecases import snapshots as snapshot_cases

__all__ = ["router"]

router = APIRouter(prefix="/api/vms", tags=["snapshots"])


class CreateSnapshot(BaseModel):
    name: str | None = Field(None, description="Snapshot name (default snap-DATE-TIME); no '/'.")
    description: str = Field("", max_length=1000)
    memory: bool = Field(False, description="Also save memory and device state (running VM).")
    quiesce: bool = Field(False, description="Freeze the guest's filesystems around it (guest agent).")


class CloneRequest(BaseModel):
    name: str = Field(description="Name of the new VM.")
    linked: bool = Field(False, description="Overlay on the source's frozen disks instead of a full copy.")
    start: bool = False


@router.get("/{name}/snapshots")
def snapshots_list(name: str, host: Host = Depends(request_host)) -> dict[str, Any]:
    """The VM's snapshot tree: each snapshot with its parent and children; `current` is where the VM stands."""
    from vmdeck.vm.snapshot_ops import list_snapshots

    return list_snapshots(host, name).to_dict()


@router.post("/{name}/snapshots", status_code=201)
def snapshots_create(name: str, body: CreateSnapshot, host: Host = Depends(request_host),
                     actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                     ) -> dict[str, Any]:
    """Take a snapshot; its overlays (as large as each disk) and memory state count against the disk quota."""
    return asdict(snapshot_cases.create_snapshot(services, actor, host, name, body.name, description=body.description,
                                                 memory=body.memory, quiesce=body.quiesce))


@router.post("/{name}/snapshots/{snap}/revert")
def snapshots_revert(name: str, snap: str, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
                     services: Services = Depends(request_services)) -> dict[str, Any]:
    """Go back to the snapshot: the present state is discarded; the VM resumes if it has memory state."""
    return asdict(snapshot_cases.revert_snapshot(services, actor, host, name, snap))


@router.delete("/{name}/snapshots/{snap}")
def snapshots_delete(name: str, snap: str, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
                     services: Services = Depends(request_services)) -> dict[str, Any]:
    """Delete the snapshot; its data is merged into the chain, never lost."""
    return asdict(snapshot_cases.delete_snapshot(services, actor, host, name, snap))


@router.post("/{name}/clone", status_code=201)
def vms_clone(name: str, body: CloneRequest, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
              services: Services = Depends(request_services)) -> dict[str, Any]:
    """A full or linked clone with a new UUID, MACs, NVRAM and cloud-init instance-id, in the source's
    project and within its quotas (charged what its disks may grow to: a linked clone its overlays and
    the source's snapshot)."""
    return asdict(snapshot_cases.clone(services, actor, host, name, body.name, linked=body.linked, start=body.start))

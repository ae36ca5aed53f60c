"""REST endpoints for snapshots and clones of a VM (api layer, thin over vm.snapshot_ops and vm.clone).

Reverting and deleting change disks: the web UI asks for confirmation; the API
does what it is told, with the same checks as the CLI (409 for a wrong state,
404 for an unknown snapshot, 422 for a bad name or a raw disk).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from vmdeck.api.context import AppContext, app_context, quota_hosts, request_host
from vmdeck.api.policy import Grant, grant_of
from vmdeck.host.connection import Host
from vmdeck.store.quota import Demand, reserve
from vmdeck.vm.project import set_project, vm_usage

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
def snapshots_create(name: str, body: CreateSnapshot, host: Host = Depends(request_host)) -> dict[str, Any]:
    from vmdeck.vm.snapshot_ops import create_snapshot

    return asdict(create_snapshot(host, name, body.name, description=body.description, memory=body.memory,
                                  quiesce=body.quiesce))


@router.post("/{name}/snapshots/{snap}/revert")
def snapshots_revert(name: str, snap: str, host: Host = Depends(request_host)) -> dict[str, Any]:
    """Go back to the snapshot: the present state is discarded; the VM resumes if it has memory state."""
    from vmdeck.vm.snapshot_ops import revert_snapshot

    return asdict(revert_snapshot(host, name, snap))


@router.delete("/{name}/snapshots/{snap}")
def snapshots_delete(name: str, snap: str, host: Host = Depends(request_host)) -> dict[str, Any]:
    """Delete the snapshot; its data is merged into the chain, never lost."""
    from vmdeck.vm.snapshot_ops import delete_snapshot

    return asdict(delete_snapshot(host, name, snap))


@router.post("/{name}/clone", status_code=201)
def vms_clone(name: str, body: CloneRequest, host: Host = Depends(request_host), grant: Grant = Depends(grant_of),
              ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """A full or linked clone with a new UUID, MACs, NVRAM and cloud-init instance-id, in the source's
    project and within its quotas (a linked clone takes no disk until it writes)."""
    from vmdeck.vm.clone import clone_vm

    if grant.project is None:  # a VM outside any project (administrators): the clone is outside too
        return asdict(clone_vm(host, name, body.name, linked=body.linked, start=body.start))
    source = vm_usage(host, name)
    demand = Demand(instances=1, vcpus=source.vcpus, memory_mib=source.memory_mib,
                    disk_gib=0.0 if body.linked else source.disk_gib)
    with reserve(ctx.accounts.db, quota_hosts(ctx, host), grant.project, demand, f"vm:{body.name}", on=host):
        made = clone_vm(host, name, body.name, linked=body.linked, start=False)
        set_project(host, body.name, grant.project)
    if body.start:
        from vmdeck.vm import lifecycle

        lifecycle.start(host, body.name)
    return asdict(made)

"""REST endpoints for a VM's storage (api layer): its disks' sizes and room on the host, and the volumes it
kept when a disk was removed, with reattach and delete.

Reads come from vmdeck.vm.volumes; changes go through vmdeck.usecases.volumes (as `vmdeck disk kept|reattach|
purge` do), checked, charged and audited there. A kept volume is named by its file name: the only part of
its path a tenant sees (vmdeck.api.hostpaths shortens the rest of the answer).
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
from vmdeck.usecases import volumes as volume_cases
from vmdeck.vm import volumes

__all__ = ["router"]

router = APIRouter(prefix="/api/vms/{name}", tags=["devices"])


class Reattach(BaseModel):
    bus: str = Field("virtio", pattern=r"^[a-z]{2,8}$")


@router.get("/storage")
def storage_show(name: str, host: Host = Depends(request_host)) -> dict[str, Any]:
    """Each disk (size the guest sees, what its file takes on the host, bus/target, overlay or whole image)
    and the volumes kept when a disk was removed."""
    return {"disks": [asdict(d) for d in volumes.disk_facts(host, name)],
            "kept": [asdict(k) for k in volumes.kept_volumes(host, name)]}


@router.post("/volumes/{volume}/reattach", status_code=201)
def volume_reattach(name: str, volume: str, body: Reattach | None = None, host: Host = Depends(request_host),
                    actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                    ) -> dict[str, Any]:
    """Plug a kept volume in again as the next free disk (hot-plugged when the bus allows)."""
    bus = body.bus if body is not None else "virtio"
    return asdict(volume_cases.reattach_volume(services, actor, host, name, volume, bus=bus))


@router.delete("/volumes/{volume}")
def volume_purge(name: str, volume: str, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
                 services: Services = Depends(request_services)) -> dict[str, Any]:
    """Delete a kept volume from the pool: its data is gone, its share of the disk quota free again."""
    return {**asdict(volume_cases.purge_volume(services, actor, host, name, volume)), "deleted": True}

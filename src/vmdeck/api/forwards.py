"""REST endpoints for a VM's port forwards (api layer): viewers list them, operators add and remove them.

Changes go through vmdeck.usecases.forwards, as `vmdeck forward add|remove` do; the policy table
(vmdeck.api.policy: "vm.forwards", "vm.forwards.list") has checked the caller's role in the VM's project.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from vmdeck.api.actors import request_actor, request_services
from vmdeck.api.context import request_host
from vmdeck.host.connection import Host
from vmdeck.usecases import Actor, Services
from vmdeck.usecases import forwards as forward_cases

__all__ = ["router"]

router = APIRouter(prefix="/api/vms/{name}/forwards", tags=["forwards"])


class NewForward(BaseModel):
    host_port: int = Field(ge=1, le=65535)
    guest_port: int | None = Field(None, ge=1, le=65535, description="Default: the host port.")
    proto: str = Field("tcp", pattern=r"^(tcp|udp)$")
    address: str = Field("127.0.0.1", max_length=15, description="127.0.0.1 or an address of the host.")


@router.get("")
def forwards_list(name: str, host: Host = Depends(request_host),
                  services: Services = Depends(request_services)) -> list[dict[str, Any]]:
    """The VM's port forwards: host address, port and protocol, and where they go in the guest."""
    host.lookup(name)  # 404 for a VM that is not there, as every VM route
    return [f.to_dict() for f in forward_cases.list_forwards(services, name)]


@router.post("", status_code=201)
def forwards_add(name: str, body: NewForward, host: Host = Depends(request_host),
                 actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                 ) -> dict[str, Any]:
    """Forward a host port to the VM's NIC on a vmdeck NAT network (409: the port is taken; 422: no such NIC)."""
    ports = f"{body.host_port}:{body.guest_port or body.host_port}"
    return forward_cases.add(services, actor, host, name, ports, proto=body.proto, address=body.address).to_dict()


@router.delete("/{forward_id}")
def forwards_remove(name: str, forward_id: int, host: Host = Depends(request_host),
                    actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                    ) -> dict[str, Any]:
    gone = forward_cases.remove(services, actor, host, name, 0, forward_id=forward_id)
    return {**gone.to_dict(), "deleted": True}

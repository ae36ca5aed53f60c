"""REST endpoints for a VM's disks, NICs, CD/DVD media, keys, screenshots and guest info (api layer).

Changes go through vmdeck.usecases.devices (as `vmdeck disk|nic|cdrom` do), keys and text through
vmdeck.usecases.guest (as `vmdeck send-keys|type`); reads are thin calls into vmdeck.vm.devices and
vmdeck.vm.guestinfo.
Media come from the ISO library by name; a web client never names a host path.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from vmdeck.api.actors import request_actor, request_services
from vmdeck.api.context import AppContext, app_context, request_host
from vmdeck.api.isos import usable_iso
from vmdeck.api.policy import Grant, grant_of
from vmdeck.host.connection import Host
from vmdeck.usecases import Actor, Services
from vmdeck.usecases import devices as device_cases
from vmdeck.usecases import guest as guest_cases
from vmdeck.vm import devices
from vmdeck.vm.devices import DeviceChange
from vmdeck.vm.guestinfo import guest_info

__all__ = ["router"]

router = APIRouter(prefix="/api/vms/{name}", tags=["devices"])


class DiskAdd(BaseModel):
    size_gib: float = Field(gt=0, le=65536)
    bus: str = "virtio"
    format: str = "qcow2"


class DiskResize(BaseModel):
    size_gib: float = Field(gt=0, le=65536)


class NicAdd(BaseModel):
    model: str = "virtio"
    network: str = Field("user", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+:-]{0,63}$")
    mac: str | None = None


class MediaInsert(BaseModel):
    iso: str = Field(description="Name of an ISO in the ISO library.")
    drive: str | None = Field(None, description="Drive target (sda, hdc ...); default: the first CD/DVD drive.")
    force: bool = False


class DriveAdd(BaseModel):
    bus: str | None = None
    iso: str | None = Field(None, description="Name of an ISO in the ISO library to put in the new drive.")


class Keys(BaseModel):
    keys: list[str] = Field(min_length=1, description='Key combinations such as "ctrl-alt-delete", "enter".')


class Text(BaseModel):
    text: str = Field(min_length=1, max_length=4096)


def _change(change: DeviceChange) -> dict[str, Any]:
    return asdict(change)


@router.get("/devices")
def devices_list(name: str, host: Host = Depends(request_host)) -> list[dict[str, Any]]:
    """Disks, CD/DVD drives and NICs, each live, pending (next boot) or config-only."""
    return [asdict(row) for row in devices.device_table(host, name)]


@router.post("/disks", status_code=201)
def disks_add(name: str, body: DiskAdd, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
              services: Services = Depends(request_services)) -> dict[str, Any]:
    """A new volume in vmdeck's pool, attached (hot-plugged when the bus allows), within the disk quota."""
    return _change(device_cases.add_disk(services, actor, host, name, body.size_gib, bus=body.bus, fmt=body.format))


@router.delete("/disks/{target}")
def disks_remove(name: str, target: str, delete_volume: bool = Query(False, description="Also delete the volume "
                 "(only one vmdeck created for this VM)."), host: Host = Depends(request_host),
                 actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                 ) -> dict[str, Any]:
    return _change(device_cases.remove_disk(services, actor, host, name, target, delete_volume=delete_volume))


@router.post("/disks/{target}/resize")
def disks_resize(name: str, target: str, body: DiskResize, host: Host = Depends(request_host),
                 actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
                 ) -> dict[str, Any]:
    """Grow a disk; a volume vmdeck created counts its growth against the project's disk quota."""
    return _change(device_cases.resize_disk(services, actor, host, name, target, body.size_gib))


@router.post("/nics", status_code=201)
def nics_add(name: str, body: NicAdd, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
             services: Services = Depends(request_services)) -> dict[str, Any]:
    return _change(device_cases.add_nic(services, actor, host, name, model=body.model, network=body.network,
                                        mac=body.mac))


@router.delete("/nics/{mac}")
def nics_remove(name: str, mac: str, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
                services: Services = Depends(request_services)) -> dict[str, Any]:
    return _change(device_cases.remove_nic(services, actor, host, name, mac))


@router.post("/media")
def media_insert(name: str, body: MediaInsert, host: Host = Depends(request_host), grant: Grant = Depends(grant_of),
                 ctx: AppContext = Depends(app_context), actor: Actor = Depends(request_actor),
                 services: Services = Depends(request_services)) -> dict[str, Any]:
    """Insert an ISO from the library into a CD/DVD drive (live when the VM runs, and for the next boot)."""
    iso = usable_iso(ctx, grant, body.iso)
    return _change(device_cases.insert_media(services, actor, host, name, iso, drive=body.drive, force=body.force))


@router.delete("/media")
def media_eject(name: str, drive: str | None = Query(None), force: bool = Query(False),
                host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
                services: Services = Depends(request_services)) -> dict[str, Any]:
    return _change(device_cases.eject_media(services, actor, host, name, drive=drive, force=force))


@router.post("/cdroms", status_code=201)
def cdroms_add(name: str, body: DriveAdd, host: Host = Depends(request_host), grant: Grant = Depends(grant_of),
               ctx: AppContext = Depends(app_context), actor: Actor = Depends(request_actor),
               services: Services = Depends(request_services)) -> dict[str, Any]:
    iso = usable_iso(ctx, grant, body.iso) if body.iso else None
    return _change(device_cases.add_drive(services, actor, host, name, bus=body.bus, iso=iso))


@router.get("/screenshot", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "The VM's screen as PNG."}})
def vm_screenshot(name: str, host: Host = Depends(request_host), actor: Actor = Depends(request_actor)) -> Response:
    return Response(guest_cases.screenshot(actor, host, name), media_type="image/png",
                    headers={"cache-control": "no-store"})


@router.post("/keys")
def vm_keys(name: str, body: Keys, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
            services: Services = Depends(request_services)) -> dict[str, Any]:
    """Press key combinations (e.g. "ctrl-alt-delete") on the VM's keyboard."""
    return {"pressed": guest_cases.send_keys(services, actor, host, name, body.keys)}


@router.post("/type")
def vm_type(name: str, body: Text, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
            services: Services = Depends(request_services)) -> dict[str, Any]:
    """Type text on the VM's keyboard (US layout), as a person at its console would."""
    return {"pressed": guest_cases.type_text(services, actor, host, name, body.text)}


@router.get("/guest")
def vm_guest(name: str, host: Host = Depends(request_host)) -> dict[str, Any]:
    """What the guest agent reports: OS, hostname, addresses, filesystems."""
    return asdict(guest_info(host, name))

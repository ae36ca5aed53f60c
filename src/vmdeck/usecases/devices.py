"""Disks, NICs and CD/DVD media of a VM (use-case layer).

A new volume and a disk's growth count against the project's disk quota, checked and applied under
the quota's lock; an image the user brought (attach) or an ISO is not vmdeck's volume and counts nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vmdeck.host.connection import Host
from vmdeck.store.quota import Demand
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.quota import grown
from vmdeck.usecases.services import Services
from vmdeck.vm import devices, media
from vmdeck.vm.devices import DeviceChange

__all__ = ["check_nic_networks", "add_disk", "attach_disk", "remove_disk", "resize_disk", "add_nic", "remove_nic", "insert_media",
           "eject_media", "add_drive"]

T = TypeVar("T")


def _change(svc: Services, actor: Actor, host: Host, name: str, action: str, do: Callable[[], T], *,
            disk_gib: Callable[[], float] | None = None, status: int = 200) -> T:
    """Policy, then the disk quota for `disk_gib()` (checked and `do` run under its lock), inside the audit line."""
    project = project_of_vm(svc, actor, action, host, name)
    with audited(svc, actor, action, project, name, status=status):
        authorize(actor, action, project)
        if disk_gib is None:
            result = do()
        else:
            result = grown(svc, host, project, lambda: Demand(disk_gib=disk_gib()), do)
    return result


def add_disk(svc: Services, actor: Actor, host: Host, name: str, size_gib: float, *, bus: str = "virtio",
             fmt: str = "qcow2") -> DeviceChange:
    return _change(svc, actor, host, name, "vm.devices",
                   lambda: devices.add_disk(host, name, size_gib, bus=bus, fmt=fmt),
                   disk_gib=lambda: size_gib, status=201)


def attach_disk(svc: Services, actor: Actor, host: Host, name: str, path: str | Path, *, bus: str = "virtio",
                readonly: bool = False) -> DeviceChange:
    return _change(svc, actor, host, name, "vm.devices",
                   lambda: devices.attach_disk(host, name, path, bus=bus, readonly=readonly), status=201)


def remove_disk(svc: Services, actor: Actor, host: Host, name: str, target: str, *,
                delete_volume: bool = False) -> DeviceChange:
    return _change(svc, actor, host, name, "vm.devices",
                   lambda: devices.remove_disk(host, name, target, delete_volume_too=delete_volume))


def resize_disk(svc: Services, actor: Actor, host: Host, name: str, target: str, size_gib: float) -> DeviceChange:
    """Grow a disk; a volume vmdeck created counts its growth against the project's disk quota."""
    from vmdeck.vm.project import owned_disk_gib

    return _change(svc, actor, host, name, "vm.devices",
                   lambda: devices.resize_disk(host, name, target, size_gib),
                   disk_gib=lambda: max(0.0, size_gib - owned_disk_gib(host, name, target)))


def check_nic_networks(svc: Services, actor: Actor, host: Host, project: str | None, networks: set[str]) -> None:
    """May `project`'s VM have NICs on `networks`? QEMU's user network, the project's own networks
    (vmdeck.vm.networks), and the libvirt networks an administrator allowed the project (store.tenancy);
    anything else, another project's network included, is the 404 of a network that does not exist.
    Host administrators use any network."""
    from vmdeck.vm.networks import project_networks

    if actor.admin:
        return
    mine = project_networks(host, project)
    svc.tenancy.check_networks(project, sorted(n for n in networks if n not in mine), by=None)


def add_nic(svc: Services, actor: Actor, host: Host, name: str, *, model: str = "virtio", network: str = "user",
            mac: str | None = None) -> DeviceChange:
    def plug() -> DeviceChange:
        check_nic_networks(svc, actor, host, project_of_vm(svc, actor, "vm.devices", host, name), {network})
        return devices.add_nic(host, name, model=model, network=network, mac=mac)

    return _change(svc, actor, host, name, "vm.devices", plug, status=201)


def remove_nic(svc: Services, actor: Actor, host: Host, name: str, mac: str) -> DeviceChange:
    return _change(svc, actor, host, name, "vm.devices", lambda: devices.remove_nic(host, name, mac))


def insert_media(svc: Services, actor: Actor, host: Host, name: str, iso: str | Path, *, drive: str | None = None,
                 force: bool = False) -> DeviceChange:
    return _change(svc, actor, host, name, "vm.media",
                   lambda: media.insert(host, name, iso, drive=drive, force=force))


def eject_media(svc: Services, actor: Actor, host: Host, name: str, *, drive: str | None = None,
                force: bool = False) -> DeviceChange:
    return _change(svc, actor, host, name, "vm.media", lambda: media.eject(host, name, drive=drive, force=force))


def add_drive(svc: Services, actor: Actor, host: Host, name: str, *, bus: str | None = None,
              iso: str | Path | None = None) -> DeviceChange:
    return _change(svc, actor, host, name, "vm.devices", lambda: media.add_drive(host, name, bus=bus, iso=iso),
                   status=201)

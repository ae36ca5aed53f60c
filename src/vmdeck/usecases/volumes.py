"""A VM's kept volumes: reattach one, or delete it for good (use-case layer).

A kept volume is still the VM's (vmdeck.vm.volumes): it has counted against the project's disk quota since it
was made, so plugging it in again charges nothing, and deleting it frees its share. Both are "vm.devices"
changes, checked and audited like adding or removing a disk.
"""

from __future__ import annotations

from vmdeck.host.connection import Host
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.services import Services
from vmdeck.vm import volumes
from vmdeck.vm.devices import DeviceChange
from vmdeck.vm.volumes import KeptVolume

__all__ = ["reattach_volume", "purge_volume"]


def reattach_volume(svc: Services, actor: Actor, host: Host, name: str, volume: str, *,
                    bus: str = "virtio") -> DeviceChange:
    project = project_of_vm(svc, actor, "vm.devices", host, name)
    with audited(svc, actor, "vm.devices", project, name, status=201):
        authorize(actor, "vm.devices", project)
        return volumes.reattach_volume(host, name, volume, bus=bus)


def purge_volume(svc: Services, actor: Actor, host: Host, name: str, volume: str) -> KeptVolume:
    project = project_of_vm(svc, actor, "vm.devices", host, name)
    with audited(svc, actor, "vm.devices", project, name):
        authorize(actor, "vm.devices", project)
        return volumes.purge_volume(host, name, volume)

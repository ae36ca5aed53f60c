"""Tuning a running VM from the host: vCPU and emulator pinning, the balloon (use-case layer).

`vmdeck pin|balloon` and the Learn tour's steps call these. They change how the VM runs, not what it is
charged: a pinning moves threads, a balloon lowers the memory the guest may keep below its configured size
(the quota counts the configured size). An operator's (vm.tune), audited like every change.
"""

from __future__ import annotations

from vmdeck.host.connection import Host
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.services import Services

__all__ = ["pin_vcpu", "pin_emulator", "set_balloon"]


def pin_vcpu(svc: Services, actor: Actor, host: Host, name: str, vcpu: int, cpus: str, *,
             persist: bool = False) -> str:
    """Pin vCPU `vcpu` to host CPUs `cpus` (1, 0-1, 0,2); the CPUs it now runs on."""
    from vmdeck.hostview.pin import pin_vcpu as pin

    project = project_of_vm(svc, actor, "vm.tune", host, name)
    with audited(svc, actor, "vm.tune", project, name):
        authorize(actor, "vm.tune", project)
        applied = pin(host, name, vcpu, cpus, persist=persist)
    return applied


def pin_emulator(svc: Services, actor: Actor, host: Host, name: str, cpus: str, *, persist: bool = False) -> str:
    from vmdeck.hostview.pin import pin_emulator as pin

    project = project_of_vm(svc, actor, "vm.tune", host, name)
    with audited(svc, actor, "vm.tune", project, name):
        authorize(actor, "vm.tune", project)
        applied = pin(host, name, cpus, persist=persist)
    return applied


def set_balloon(svc: Services, actor: Actor, host: Host, name: str, mib: int, *, persist: bool = False) -> int:
    """The memory the guest may keep, in MiB (never above its configured size); the target set, in KiB."""
    from vmdeck.hostview.balloon import set_balloon as inflate

    project = project_of_vm(svc, actor, "vm.tune", host, name)
    with audited(svc, actor, "vm.tune", project, name):
        authorize(actor, "vm.tune", project)
        kib = inflate(host, name, mib, persist=persist)
    return kib

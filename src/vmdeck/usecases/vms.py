"""Creating, powering, resizing and deleting VMs (use-case layer).

The CLI (`vmdeck create|start|shutdown|...|delete|set`, in-process and on its fast path) and the REST API
(`/api/vms...`, which also serves the CLI's hand-off on the local socket) call these functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vmdeck.errors import Conflict, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.store.quota import Demand, reserve
from vmdeck.store.tenancy import DEFAULT_PROJECT
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.common import Progress, quiet
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.quota import grown
from vmdeck.usecases.services import Services
from vmdeck.usecases.tasks import tracked
from vmdeck.vm import lifecycle

if TYPE_CHECKING:  # pydantic: not on the path of `vmdeck start` (vmdeck.cli.fast)
    from vmdeck.spec.models import VmSpec

__all__ = ["Created", "placed", "create", "start", "start_many", "power", "shutdown", "delete", "set_resources", "adopt"]


@dataclass(frozen=True)
class Created:
    host: Host
    host_name: str  # the registered host placement chose ("" with one host)
    project: str
    view: Any  # vmdeck.domxml.parse.DomainView of the new VM


@contextlib.contextmanager
def placed(svc: Services, local: Host | None, spec: VmSpec, wanted: str | None) -> Iterator[tuple[Host, str]]:
    """The host a new VM goes to. With several hosts its room stays held until the body is done (the VM
    runs, or the create failed), so a create placed meanwhile counts it (vmdeck.cluster.place)."""
    if svc.fleet is None:
        if wanted not in (None, "auto", "local") or local is None:
            raise NotFound(f"no host named {wanted!r} is registered (one host is managed here)")
        yield local, ""
        return
    from vmdeck.cluster.place import placed as room_held

    with room_held(svc.fleet, spec, None if wanted in (None, "auto") else wanted) as entry:
        yield svc.fleet.host(entry), entry.name


def create(svc: Services, actor: Actor, spec: VmSpec, *, local: Host | None, project: str | None = None,
           on_host: str | None = None, cloud_init: Any = None, start: bool = False, wait: bool = False,
           timeout: float = 120.0, progress: Progress = quiet) -> Created:
    """Create VM `spec` in `project` (default `default`, made on first use) within its quotas, on `local`
    (one host) or the registered host placement picks (`on_host`: a name, or None/"auto")."""
    from vmdeck.usecases.charges import create_demand
    from vmdeck.vm.create import create_vm

    project = project or DEFAULT_PROJECT
    with audited(svc, actor, "vm.create", project, spec.name, status=201):
        authorize(actor, "vm.create", project)
        svc.tenancy.ensure_project(project)
        demand = create_demand(spec)  # before anything exists: an image's overlay counts its full size
        with placed(svc, local, spec, on_host) as (host, host_name):
            from vmdeck.usecases.devices import check_nic_networks

            check_nic_networks(svc, actor, host, project, {nic.network for nic in spec.nics})
            if host.exists(spec.name):
                raise Conflict(f"a VM named {spec.name!r} already exists")
            with tracked(svc, actor, "vm.create", spec.name, project=project, vm=spec.name) as task:
                progress = task.reporter(progress)
                # Counted on every registered host (or the one host); the VM's host keeps what it took.
                with reserve(svc.db, svc.counted_on(host), project, demand, f"vm:{spec.name}", on=host):
                    view = create_vm(host, spec, progress, cloud_init=cloud_init, project=project)
                if start:
                    lifecycle.start(host, spec.name, wait=wait, timeout=timeout, progress=progress)
                task.result = f"created {spec.name}" + (", started" if start else "")
    return Created(host, host_name, project, view)


def start(svc: Services, actor: Actor, host: Host, name: str, *, wait: bool = False, timeout: float = 120.0,
          progress: Progress = quiet) -> None:
    project = project_of_vm(svc, actor, "vm.power", host, name)
    with audited(svc, actor, "vm.power", project, name):
        authorize(actor, "vm.power", project)
        if not wait:  # a plain start takes a moment: only a start that waits for the guest is a task
            lifecycle.start(host, name, wait=False, timeout=timeout, progress=progress)
        else:
            with tracked(svc, actor, "vm.start", name, project=project, vm=name) as task:
                lifecycle.start(host, name, wait=True, timeout=timeout, progress=task.reporter(progress))
                task.result = f"{name} started and ready"
    _forwards_after_start(svc, host, [name])


def _forwards_after_start(svc: Services, host: Host, names: list[str]) -> None:
    """The VMs' port forwards put back on this machine's firewall (gone after a host reboot)."""
    from vmdeck.usecases.forwards import reapply

    for name in names:
        reapply(svc, host, name)


def start_many(svc: Services, actor: Actor, host: Host, names: list[str], *, wait: bool = False,
               timeout: float = 120.0, progress: Progress = quiet) -> None:
    """Start several VMs at once (a boot storm); one audit line per VM, each with the storm's outcome."""
    from vmdeck.vm.boot import start_many as storm

    names = list(dict.fromkeys(names))
    projects = {name: project_of_vm(svc, actor, "vm.power", host, name) for name in names}
    with contextlib.ExitStack() as lines:
        for name in names:
            lines.enter_context(audited(svc, actor, "vm.power", projects[name], name))
        for name in names:
            authorize(actor, "vm.power", projects[name])
        if wait:  # each VM's start is a task of its project, with the storm's lines and outcome
            tasks = [lines.enter_context(tracked(svc, actor, "vm.start", name, project=projects[name], vm=name))
                     for name in names]
            reporters = [task.reporter() for task in tasks]

            def report(line: str) -> None:
                for reporter in reporters:
                    reporter(line)
                progress(line)

            storm(host, names, wait=True, timeout=timeout, progress=report)
            for name, task in zip(names, tasks, strict=True):
                task.result = f"{name} started and ready"
        else:
            storm(host, names, wait=False, timeout=timeout, progress=progress)
    _forwards_after_start(svc, host, names)


def power(svc: Services, actor: Actor, host: Host, name: str, verb: str) -> str | None:
    """A power verb without options (vmdeck.vm.state.POWER_VERBS): poweroff, reboot, reset, pause, resume.
    Returns what happened when it differs from the verb's usual outcome (a reboot that power-cycled the VM
    to apply pending changes)."""
    project = project_of_vm(svc, actor, "vm.power", host, name)
    with audited(svc, actor, "vm.power", project, name):
        authorize(actor, "vm.power", project)
        return lifecycle.power(host, name, verb)


def shutdown(svc: Services, actor: Actor, host: Host, name: str, *, timeout: float = 60.0, force: bool = False,
             progress: Progress = quiet) -> str:
    project = project_of_vm(svc, actor, "vm.power", host, name)
    with audited(svc, actor, "vm.power", project, name):
        authorize(actor, "vm.power", project)
        how = lifecycle.shutdown(host, name, timeout=timeout, force=force, progress=progress)
    return how


def delete(svc: Services, actor: Actor, host: Host, name: str, *, force: bool = False, keep_disks: bool = False,
           progress: Progress = quiet) -> list[str]:
    """Delete the VM and the volumes vmdeck created for it; the volumes deleted."""
    project = project_of_vm(svc, actor, "vm.delete", host, name)
    with audited(svc, actor, "vm.delete", project, name):
        authorize(actor, "vm.delete", project)
        from vmdeck.usecases.forwards import vm_deleted
        from vmdeck.vm.networks import release_reservations, reservations_of

        leases = []  # its static DHCP leases, named by MACs that are about to go (none readable: none released)
        with contextlib.suppress(VmdeckError):
            leases = reservations_of(host, name)
        removed = lifecycle.delete(host, name, force=force, keep_disks=keep_disks, progress=progress)
        vm_deleted(svc, host, name)  # its port forwards and their rules go with it
        release_reservations(host, leases)
    return removed


def set_resources(svc: Services, actor: Actor, host: Host, name: str, *, vcpus: int | None = None,
                  memory_mib: int | None = None, autostart: bool | None = None,
                  boot_order: list[str] | None = None) -> dict[str, Any]:
    """Change vCPUs and/or memory (growth checked and applied under the quota lock), autostart, boot order."""
    from vmdeck.vm.inventory import show_vm
    from vmdeck.vm.settings import set_autostart, set_boot_order, set_vm_resources

    project = project_of_vm(svc, actor, "vm.resize", host, name)
    reply: dict[str, Any] = {"name": name}
    with audited(svc, actor, "vm.resize", project, name):
        authorize(actor, "vm.resize", project)
        if vcpus is not None or memory_mib is not None or (autostart is None and boot_order is None):
            def apply() -> Any:
                return set_vm_resources(host, name, vcpus=vcpus, memory_mib=memory_mib)

            def growth() -> Demand:
                current = show_vm(host, name).view
                return Demand(vcpus=max(0, (vcpus or current.vcpus) - current.vcpus),
                              memory_mib=max(0, (memory_mib or current.memory_mib) - current.memory_mib))

            change = grown(svc, host, project, growth, apply)
            reply.update(vcpus=change.vcpus, memory_mib=change.memory_mib, applies=change.applies)
        if boot_order is not None:
            reply["boot_order"] = list(set_boot_order(host, name, list(boot_order)))
        if autostart is not None:
            reply["autostart"] = set_autostart(host, name, autostart)
    return reply


def adopt(svc: Services, actor: Actor, host: Host, name: str, project: str) -> str | None:
    """Record VM `name` (made by virt-install, virsh, or in another project) as `project`'s (created when it
    does not exist); its previous project. An administrator's decision: not held to the quota."""
    from vmdeck.vm.project import project_of, set_project

    with audited(svc, actor, "vm.adopt", project, name):
        authorize(actor, "vm.adopt", project)
        svc.tenancy.ensure_project(project)
        before = project_of(host, name)
        set_project(host, name, project)
    return before

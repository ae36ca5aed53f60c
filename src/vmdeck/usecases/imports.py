"""Importing a VM made elsewhere (an OVA, an OVF or a disk image) into a project (use-case layer).

`vmdeck import` and `POST /api/import` call `import_vm` with the plan vmdeck.vm.importer made. As a create,
it is the project's managers' (vm.import), placed like a create on several hosts, and its VM, vCPUs, memory
and disks are held against the project's quotas before a byte of the disks is written.
"""

from __future__ import annotations

from vmdeck.errors import Conflict
from vmdeck.host.connection import Host
from vmdeck.store.quota import Demand, reserve
from vmdeck.store.tenancy import DEFAULT_PROJECT
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited
from vmdeck.usecases.common import Progress, quiet
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.services import Services
from vmdeck.usecases.tasks import tracked
from vmdeck.usecases.vms import Created, placed
from vmdeck.vm.importer import ImportPlan

__all__ = ["import_vm"]


def import_vm(svc: Services, actor: Actor, plan: ImportPlan, *, local: Host | None, project: str | None = None,
              on_host: str | None = None, progress: Progress = quiet) -> Created:
    """Import `plan` as a VM of `project` (default `default`, made on first use) within its quotas, on `local`
    (one host) or the registered host placement picks (`on_host`: a name, or None/"auto")."""
    from vmdeck.usecases.devices import check_nic_networks
    from vmdeck.vm.importer import import_vm as convert

    project = project or DEFAULT_PROJECT
    spec = plan.spec
    with audited(svc, actor, "vm.import", project, spec.name, status=201):
        authorize(actor, "vm.import", project)
        svc.tenancy.ensure_project(project)
        with placed(svc, local, spec, on_host) as (host, host_name):
            check_nic_networks(svc, actor, host, project, {nic.network for nic in spec.nics})
            if host.exists(spec.name):
                raise Conflict(f"a VM named {spec.name!r} already exists")
            # Held before a byte is written: a disk larger than the project's room stops here.
            with reserve(svc.db, svc.counted_on(host), project, Demand(**plan.demand_numbers()), f"vm:{spec.name}",
                         on=host), tracked(svc, actor, "vm.import", spec.name, project=project, vm=spec.name) as task:
                view = convert(host, plan, task.reporter(progress), project=project)
                task.result = f"imported {spec.name}"
    return Created(host, host_name, project, view)

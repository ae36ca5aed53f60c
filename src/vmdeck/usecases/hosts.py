"""Moving VMs between hosts and managing the host registry (use-case layer).

One rule for "one host or several" (vmdeck.usecases.topology), one lookup of a migration's destination
(`destination`), for the command and the API alike.
"""

from __future__ import annotations

from vmdeck.cluster.drain import DrainReport, drain_host
from vmdeck.cluster.fleet import Fleet, register_host
from vmdeck.cluster.registry import HostEntry, Registry
from vmdeck.host.connection import Host
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.common import Progress, quiet
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.services import Services
from vmdeck.usecases.tasks import tracked

__all__ = ["destination", "migrate", "drain", "undrain", "add_host", "remove_host"]


def destination(registry: Registry, to: str, migrate_uri: str | None = None) -> tuple[str, str | None]:
    """(libvirt URI, migration URI) of `to`: a registered host's name (NotFound naming the known ones), or a URI."""
    if "://" in to:
        return to, migrate_uri
    entry = registry.get(to)
    return entry.connect_uri, migrate_uri or entry.migrate_uri


def migrate(svc: Services, actor: Actor, host: Host, name: str, to: str, registry: Registry, *, live: bool = True,
            migrate_uri: str | None = None, shared_storage: bool = False, timeout: float | None = None,
            bandwidth_mib: int | None = None, progress: Progress = quiet) -> str:
    """Move VM `name` to `to` (a registered host or a libvirt URI); the one-line summary."""
    from vmdeck.vm.migrate import migrate as migrate_vm

    project = project_of_vm(svc, actor, "vm.migrate", host, name)
    with audited(svc, actor, "vm.migrate", project, name):
        authorize(actor, "vm.migrate", project)
        dest_uri, via = destination(registry, to, migrate_uri)
        with tracked(svc, actor, "vm.migrate", name, project=project, vm=name) as task:
            summary = migrate_vm(host, name, dest_uri, live=live, migrate_uri=via, shared_storage=shared_storage,
                                 timeout=timeout, bandwidth_mib=bandwidth_mib, progress=task.reporter(progress))
            task.result = summary
    return summary


def drain(svc: Services, actor: Actor, fleet: Fleet, registry: Registry, host_name: str, *,
          timeout: float | None = None, progress: Progress = quiet) -> DrainReport:
    """Mark the host draining and move every VM off it, one at a time (live when running)."""
    with audited(svc, actor, "host.manage", None, None):
        authorize(actor, "host.manage", None)
        report = drain_host(fleet, registry, host_name, timeout=timeout, progress=progress)
    return report


def undrain(svc: Services, actor: Actor, registry: Registry, host_name: str) -> HostEntry:
    with audited(svc, actor, "host.manage", None, None):
        authorize(actor, "host.manage", None)
        entry = registry.update(host_name, draining=False)
    return entry


def add_host(svc: Services, actor: Actor, registry: Registry, entry: HostEntry, *, check: bool = True) -> HostEntry:
    with audited(svc, actor, "host.manage", None, None, status=201):
        authorize(actor, "host.manage", None)
        added = register_host(registry, entry, check=check)
    return added


def remove_host(svc: Services, actor: Actor, registry: Registry, host_name: str) -> HostEntry:
    with audited(svc, actor, "host.manage", None, None):
        authorize(actor, "host.manage", None)
        removed = registry.remove(host_name)
    return removed

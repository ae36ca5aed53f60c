"""Which project a VM belongs to, and what a project's VMs add up to (core layer).

A VM's project is recorded in its libvirt domain metadata (vmdeck's namespace),
so other tools see it and it survives a lost vmdeck database. VMs that vmdeck did
not create have none. Who may act on which project is the API's business, not
this module's: here are only the facts libvirt holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmdeck.domxml.metadata import project_in, with_project
from vmdeck.domxml.names import VMDECK_NS
from vmdeck.errors import InvalidInput, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Domain

__all__ = ["PROJECT_NAME", "check_project_name", "metadata_project", "domain_project", "project_of", "vm_projects", "set_project",
           "Usage", "project_usage", "owned_disk_gib", "vm_usage"]

# Full-string match (re.fullmatch): a trailing newline is not a name.
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def check_project_name(name: str) -> str:
    if not PROJECT_NAME.fullmatch(name):
        raise InvalidInput(f"project name {name!r}: 1-63 lower-case letters, digits or '-', not starting with '-'",
                           field="project")
    return name


def metadata_project(dom: Domain, *, live: bool = False) -> str | None:
    """The project of an already looked-up domain (one libvirt call; a transient VM has only its live record)."""
    return project_in(dom.metadata(VMDECK_NS, live=live))


def domain_project(dom: Domain) -> str | None:
    """Like metadata_project, for listings: the saved record, else the live one (transient VMs), else None
    (a VM gone meanwhile is listed without a project rather than failing the list)."""
    for live in (False, True):
        try:
            return metadata_project(dom, live=live)
        except VmdeckError:
            continue
    return None


def project_of(host: Host, name: str) -> str | None:
    """The VM's project, None for a VM vmdeck did not create (NotFound for no VM)."""
    dom = host.lookup(name)
    return metadata_project(dom, live=not dom.is_persistent())


def vm_projects(host: Host) -> dict[str, str | None]:
    """Every VM on the host with its project (one metadata read per VM)."""
    return {dom.name: domain_project(dom) for dom in host.conn.domains()}


def set_project(host: Host, name: str, project: str | None) -> None:
    """Record `project` in the VM's metadata (saved definition and, when it runs, live), keeping other fields."""
    if project is not None:
        check_project_name(project)
    dom = host.lookup(name)
    records = ([False] if dom.is_persistent() else []) + ([True] if dom.is_active() else [])
    for live in records:
        edited = with_project(dom.metadata(VMDECK_NS, live=live), project)
        dom.set_metadata(edited, "vmdeck", VMDECK_NS, live=live)


@dataclass(frozen=True)
class Usage:
    """What a project's VMs take, counted on their configured sizes (shut-off VMs count)."""

    instances: int = 0
    vcpus: int = 0
    memory_mib: int = 0
    disk_gib: float = 0.0
    vms: tuple[str, ...] = ()


def _volume_gib(host: Host, path: str) -> float:
    try:
        # info(): (capacity, allocation); capacity is the configured size, not what is allocated yet.
        return float(host.conn.volume_at(path).info()[0]) / 2**30
    except VmdeckError:
        return 0.0  # deleted by hand: it takes nothing any more


def vm_usage(host: Host, name: str) -> Usage:
    """What one VM takes (configured sizes; disk: the volumes vmdeck created for it)."""
    from vmdeck.domxml.parse import parse_domain  # lxml: not on `vmdeck list`'s path

    dom = host.lookup(name)
    view = parse_domain(dom.xml(inactive=dom.is_persistent()))
    disk = sum(_volume_gib(host, path) for path in view.owned_volumes)
    return Usage(instances=1, vcpus=view.vcpus, memory_mib=view.memory_mib, disk_gib=round(disk, 3), vms=(name,))


def owned_disk_gib(host: Host, name: str, target: str) -> float:
    """Configured size of disk `target` when vmdeck created its volume (what counts against a quota), else 0."""
    from vmdeck.domxml.parse import parse_domain  # lxml: not on `vmdeck list`'s path

    dom = host.lookup(name)
    view = parse_domain(dom.xml(inactive=dom.is_persistent()))
    for disk in view.disks:
        if disk.target == target and disk.source and disk.source in view.owned_volumes:
            return _volume_gib(host, disk.source)
    return 0.0


def project_usage(host: Host, project: str, *, owners: dict[str, str | None] | None = None) -> Usage:
    """Instances, vCPUs, memory and disk (vmdeck-created volumes) of the project's VMs.
    `owners`: vm_projects(host) when the caller read it already (one metadata call per VM saved)."""
    from vmdeck.domxml.parse import parse_domain  # lxml: not on `vmdeck list`'s path

    names: list[str] = []
    vcpus = memory = 0
    disk = 0.0
    owners = vm_projects(host) if owners is None else owners
    for dom in host.conn.domains():
        if owners.get(dom.name) != project:
            continue
        try:
            view = parse_domain(dom.xml(inactive=dom.is_persistent()))
        except VmdeckError:  # gone meanwhile
            continue
        names.append(view.name)
        vcpus += view.vcpus
        memory += view.memory_mib
        disk += sum(_volume_gib(host, path) for path in view.owned_volumes)
    return Usage(instances=len(names), vcpus=vcpus, memory_mib=memory, disk_gib=round(disk, 3),
                 vms=tuple(sorted(names)))

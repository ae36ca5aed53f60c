"""Which project a VM belongs to, and what a project's VMs add up to (core layer).

A VM's project is recorded in its libvirt domain metadata (vmdeck's namespace),
so other tools see it and it survives a lost vmdeck database. VMs that vmdeck did
not create have none. Who may act on which project is the API's business, not
this module's: here are only the facts libvirt holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libvirt

from vmdeck.domxml.metadata import project_in, with_project
from vmdeck.domxml.names import VMDECK_NS
from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import InvalidInput, VmdeckError
from vmdeck.host.connection import Host, libvirt_errors, translate

__all__ = ["PROJECT_NAME", "check_project_name", "metadata_project", "project_of", "vm_projects", "set_project",
           "Usage", "project_usage", "owned_disk_gib"]

# Full-string match (re.fullmatch): a trailing newline is not a name.
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def check_project_name(name: str) -> str:
    if not PROJECT_NAME.fullmatch(name):
        raise InvalidInput(f"project name {name!r}: 1-63 lower-case letters, digits or '-', not starting with '-'",
                           field="project")
    return name


def _metadata(dom: libvirt.virDomain, flags: int = 0) -> str | None:
    try:
        return str(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, VMDECK_NS, flags))
    except libvirt.libvirtError as err:
        if err.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN_METADATA, libvirt.VIR_ERR_NO_DOMAIN):
            return None
        raise translate(err, f"{dom.name()}: metadata") from err


def metadata_project(dom: libvirt.virDomain) -> str | None:
    """The project of an already looked-up domain (one libvirt call)."""
    return project_in(_metadata(dom))


def project_of(host: Host, name: str) -> str | None:
    """The VM's project, None for a VM vmdeck did not create (NotFound for no VM)."""
    return metadata_project(host.lookup(name))


def vm_projects(host: Host) -> dict[str, str | None]:
    """Every VM on the host with its project (one metadata read per VM)."""
    with libvirt_errors("list VMs"):
        domains = host.conn.listAllDomains(0)
    projects: dict[str, str | None] = {}
    for dom in domains:
        try:
            projects[dom.name()] = metadata_project(dom)
        except (libvirt.libvirtError, VmdeckError):  # gone meanwhile
            continue
    return projects


def set_project(host: Host, name: str, project: str | None) -> None:
    """Record `project` in the VM's metadata (saved definition and, when it runs, live), keeping other fields."""
    if project is not None:
        check_project_name(project)
    dom = host.lookup(name)
    with libvirt_errors(f"{name}: metadata"):
        flags = [libvirt.VIR_DOMAIN_AFFECT_CONFIG] if dom.isPersistent() else []
        if dom.isActive():
            flags.append(libvirt.VIR_DOMAIN_AFFECT_LIVE)
    for flag in flags:
        edited = with_project(_metadata(dom, flag), project)
        with libvirt_errors(f"{name}: metadata"):
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, edited, "vmdeck", VMDECK_NS, flag)


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
        vol = host.conn.storageVolLookupByPath(path)
        return float(vol.info()[1]) / 2**30  # capacity: the configured size, not what is allocated yet
    except libvirt.libvirtError:
        return 0.0  # deleted by hand: it takes nothing any more


def owned_disk_gib(host: Host, name: str, target: str) -> float:
    """Configured size of disk `target` when vmdeck created its volume (what counts against a quota), else 0."""
    with libvirt_errors(f"{name}: disks"):
        dom = host.lookup(name)
        view = parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if dom.isPersistent() else 0))
    for disk in view.disks:
        if disk.target == target and disk.source and disk.source in view.owned_volumes:
            return _volume_gib(host, disk.source)
    return 0.0


def project_usage(host: Host, project: str) -> Usage:
    """Instances, vCPUs, memory and disk (vmdeck-created volumes) of the project's VMs."""
    with libvirt_errors("list VMs"):
        domains = host.conn.listAllDomains(0)
    names: list[str] = []
    vcpus = memory = 0
    disk = 0.0
    for dom in domains:
        try:
            if metadata_project(dom) != project:
                continue
            persistent = dom.isPersistent()
            view = parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if persistent else 0))
        except (libvirt.libvirtError, VmdeckError):  # gone meanwhile
            continue
        names.append(view.name)
        vcpus += view.vcpus
        memory += view.memory_mib
        disk += sum(_volume_gib(host, path) for path in view.owned_volumes)
    return Usage(instances=len(names), vcpus=vcpus, memory_mib=memory, disk_gib=round(disk, 3),
                 vms=tuple(sorted(names)))

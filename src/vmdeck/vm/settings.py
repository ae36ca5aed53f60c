"""Change a VM's vCPUs and memory in its persistent definition (core layer).

The definition is edited in place (`vmdeck.domxml.edit`), never re-rendered from a
spec, so whatever a user or another tool (virsh edit, virt-xml) put there survives.
A running VM keeps its current resources until its next boot, and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmdeck.domxml.edit import set_boot_order as edit_boot_order
from vmdeck.domxml.edit import set_resources
from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import InvalidInput
from vmdeck.host.capabilities import host_facts
from vmdeck.host.connection import Host
from vmdeck.vm.state import ACTIVE, current_state

__all__ = ["ResourceChange", "set_vm_resources", "set_autostart", "set_boot_order"]


@dataclass(frozen=True)
class ResourceChange:
    vm: str
    vcpus: int
    memory_mib: int
    applies: str  # "now" (shut off: the next start uses it) or "at next boot" (running)


def _check(host: Host, vcpus: int | None, memory_mib: int | None) -> None:
    if vcpus is None and memory_mib is None:
        raise InvalidInput("nothing to change: give --cpus and/or --memory")
    facts = host_facts(host)
    if vcpus is not None and not 1 <= vcpus <= facts.pcpus * 8:
        raise InvalidInput(f"vcpus must be between 1 and {facts.pcpus * 8} on this host, got {vcpus}", field="vcpus")
    if memory_mib is not None and not 32 <= memory_mib <= facts.memory_mib:
        raise InvalidInput(f"memory must be between 32 and {facts.memory_mib} MiB on this host, got {memory_mib}",
                           field="memory_mib")


def set_vm_resources(host: Host, name: str, *, vcpus: int | None = None,
                     memory_mib: int | None = None) -> ResourceChange:
    dom = host.lookup(name)
    _check(host, vcpus, memory_mib)
    edited = set_resources(dom.xml(inactive=True, secure=True), vcpus=vcpus, memory_mib=memory_mib)
    host.conn.define(edited)
    view = parse_domain(dom.xml(inactive=True))
    applies = "at next boot" if current_state(dom) in ACTIVE else "now"
    return ResourceChange(vm=name, vcpus=view.vcpus, memory_mib=view.memory_mib, applies=applies)


def set_autostart(host: Host, name: str, enabled: bool) -> bool:
    """Whether libvirtd starts the VM when it starts (virsh autostart); returns the new setting."""
    dom = host.lookup(name)
    dom.set_autostart(enabled)
    return dom.autostart()


def set_boot_order(host: Host, name: str, order: list[str]) -> tuple[str, ...]:
    """Which devices the firmware tries, in order (applies at the next boot); returns the new order."""
    dom = host.lookup(name)
    try:
        edited = edit_boot_order(dom.xml(inactive=True, secure=True), order)
    except ValueError as err:
        raise InvalidInput(str(err), field="boot_order") from err
    host.conn.define(edited, context=f"set boot order of {name}")
    return parse_domain(dom.xml(inactive=True)).boot_order

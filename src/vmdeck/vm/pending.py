"""Changes saved for a running VM's next boot (core layer), as Proxmox shows them: the persistent
definition (what the next boot uses) beside the live one (what runs now).

A guest's own reboot keeps QEMU's process, so it keeps the live definition: only a power cycle
(shut down, then start) makes the pending values real; `apply_now` plugs vCPUs in or out while the VM
runs, within the maximum its definition has room for (<vcpu current="N">MAX</vcpu>).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmdeck.domxml.parse import DomainView, parse_domain
from vmdeck.errors import StateError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Domain
from vmdeck.vm.state import ACTIVE, current_state

__all__ = ["PENDING_FIELDS", "pending_between", "read_pending", "live_limits", "apply_now", "Applied"]

# What a running VM can have waiting for its next boot, as `vmdeck show --json` names it.
PENDING_FIELDS = ("vcpus", "memory_mib")


def pending_between(live: DomainView, config: DomainView) -> dict[str, Any]:
    """The next-boot values that differ from the running ones: {"vcpus": 2, "memory_mib": 320}."""
    return {key: getattr(config, key) for key in PENDING_FIELDS if getattr(config, key) != getattr(live, key)}


def read_pending(dom: Domain, live_xml: str | None = None) -> dict[str, Any]:
    """A running persistent VM's pending values; {} for a shut-off VM (its definition is what it boots)."""
    if not dom.is_active() or not dom.is_persistent():
        return {}
    live = parse_domain(live_xml if live_xml is not None else dom.xml())
    return pending_between(live, parse_domain(dom.xml(inactive=True)))


def live_limits(live: DomainView) -> dict[str, int | None]:
    """What can change while the VM runs: vCPUs up to the definition's maximum (None: no room to plug
    any in, the count is fixed until the next boot). Memory cannot grow past what QEMU started with
    (no memory slots are defined), so a memory change always waits for the next boot."""
    return {"vcpus_max": live.max_vcpus if live.max_vcpus > live.vcpus else None}


@dataclass(frozen=True)
class Applied:
    vm: str
    applied: dict[str, Any]  # what changed in the running VM
    still_pending: dict[str, Any]  # what still waits for the next boot


def apply_now(host: Host, name: str) -> Applied:
    """Make the pending values live where the running VM allows it (vCPU hot-plug within the maximum)."""
    dom = host.lookup(name)
    state = current_state(dom)
    if state not in ACTIVE:
        raise StateError(name, state, "running", "apply changes now to")
    live = parse_domain(dom.xml())
    pending = pending_between(live, parse_domain(dom.xml(inactive=True)))
    applied: dict[str, Any] = {}
    wanted = pending.get("vcpus")
    if wanted is not None and live.max_vcpus and wanted <= live.max_vcpus:
        dom.set_vcpus(wanted, live=True, config=False)
        applied["vcpus"] = wanted
    return Applied(vm=name, applied=applied, still_pending=read_pending(dom))

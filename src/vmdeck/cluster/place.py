"""Placing a new VM on the fleet: ask every host for its capacity, pick with vmdeck.cluster.placement (core)."""

from __future__ import annotations

from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.inventory import capacities
from vmdeck.cluster.placement import NoRoom, choose_host, rejection
from vmdeck.cluster.registry import HostEntry
from vmdeck.errors import Conflict
from vmdeck.spec.models import VmSpec

__all__ = ["place_new_vm"]


def place_new_vm(fleet: Fleet, spec: VmSpec, host_name: str | None = None) -> HostEntry:
    """The registry entry of the host VM `spec` goes to (`host_name`, or the best fit); refusals say why."""
    caps = capacities(fleet)
    taken = [c.name for c in caps if c.reachable and fleet.host(c.name).exists(spec.name)]
    if taken:
        raise Conflict(f"a VM named {spec.name!r} already exists on host {taken[0]}")
    what = f"VM {spec.name!r}"
    if host_name is not None:
        entry = fleet.entry(host_name)
        cap = next(c for c in caps if c.name == entry.name)
        why = rejection(cap, spec.vcpus, spec.memory_mib)
        if why is not None:
            raise NoRoom(f"{what} ({spec.vcpus} vCPU, {spec.memory_mib} MiB)", {entry.name: why})
        return entry
    return fleet.entry(choose_host(caps, spec.vcpus, spec.memory_mib, what=what).name)

"""Placement: which host takes a new (or moving) VM. Pure functions over host capacities (core layer).

A host qualifies when it is reachable, not draining, and has room: memory (allocated + new <=
total - reserve) and vCPUs (allocated + new <= pCPUs x ratio), counting the VMs that run there and the
creates placed there that do not run yet (vmdeck.cluster.pending, added by with_pending).
Among those, the one with the most free memory wins (ties: fewest allocated vCPUs, then name), which
spreads VMs the way a provider wants: the emptiest host first. A refusal names every host and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from vmdeck.errors import Conflict

__all__ = ["Capacity", "rejection", "choose_host", "NoRoom", "with_pending"]


@dataclass(frozen=True)
class Capacity:
    name: str
    reachable: bool
    reason: str = ""  # why it is unreachable
    draining: bool = False
    pcpus: int = 0
    memory_mib: int = 0
    vcpu_ratio: float = 4.0
    reserve_mib: int = 0
    vcpus_allocated: int = 0
    memory_allocated_mib: int = 0
    vms_running: int = 0
    running: frozenset[str] = frozenset()  # names of the VMs counted in the allocation
    # Of the allocation: what creates placed here hold until their VM runs (vmdeck.cluster.pending).
    pending_vcpus: int = 0
    pending_mib: int = 0

    @property
    def vcpu_limit(self) -> int:
        return math.floor(self.pcpus * self.vcpu_ratio)

    @property
    def free_mib(self) -> int:
        """Memory that can still be given to VMs (never below 0)."""
        return max(0, self.memory_mib - self.reserve_mib - self.memory_allocated_mib)


class NoRoom(Conflict):
    """No host can take the VM; `reasons` maps each host to why it was rejected."""

    kind = "no_host"

    def __init__(self, what: str, reasons: dict[str, str]) -> None:
        listed = "; ".join(f"{name}: {why}" for name, why in reasons.items()) or "no hosts registered"
        super().__init__(f"no host can take {what}: {listed}")
        self.reasons = reasons


def rejection(cap: Capacity, vcpus: int, memory_mib: int) -> str | None:
    """Why `cap` cannot take a VM of this size, or None when it can."""
    if not cap.reachable:
        return f"unreachable ({cap.reason})" if cap.reason else "unreachable"
    if cap.draining:
        return "draining"
    if cap.memory_allocated_mib + memory_mib > cap.memory_mib - cap.reserve_mib:
        pending = f", {cap.pending_mib} of it by creates in progress" if cap.pending_mib else ""
        return (f"needs {memory_mib} MiB, {cap.free_mib} MiB free ({cap.memory_mib} total, "
                f"{cap.memory_allocated_mib} allocated{pending}, {cap.reserve_mib} reserved)")
    if cap.vcpus_allocated + vcpus > cap.vcpu_limit:
        pending = f", {cap.pending_vcpus} of them by creates in progress" if cap.pending_vcpus else ""
        return (f"needs {vcpus} vCPUs, {max(0, cap.vcpu_limit - cap.vcpus_allocated)} left "
                f"({cap.pcpus} pCPUs x {cap.vcpu_ratio:g}, {cap.vcpus_allocated} allocated{pending})")
    return None


def with_pending(caps: Iterable[Capacity], pending: Iterable[tuple[str, str, int, int]]) -> list[Capacity]:
    """`caps` with the creates in progress counted as allocated: each (host, vm, vcpus, memory_mib) whose VM
    does not run there yet. Once it runs libvirt counts it, and counting the claim too would count it twice."""
    by_name = {cap.name: cap for cap in caps}
    for host, vm, vcpus, memory_mib in pending:
        cap = by_name.get(host)
        if cap is None or vm in cap.running:
            continue
        by_name[host] = replace(cap, vcpus_allocated=cap.vcpus_allocated + vcpus,
                                memory_allocated_mib=cap.memory_allocated_mib + memory_mib,
                                pending_vcpus=cap.pending_vcpus + vcpus, pending_mib=cap.pending_mib + memory_mib)
    return list(by_name.values())


def choose_host(caps: Iterable[Capacity], vcpus: int, memory_mib: int, *, what: str = "the VM",
                exclude: Iterable[str] = ()) -> Capacity:
    """The host a VM of `vcpus` and `memory_mib` goes to; NoRoom with every host's reason otherwise."""
    excluded = set(exclude)
    reasons: dict[str, str] = {}
    fitting: list[Capacity] = []
    for cap in caps:
        if cap.name in excluded:
            reasons[cap.name] = "the VM's own host"
            continue
        why = rejection(cap, vcpus, memory_mib)
        if why is None:
            fitting.append(cap)
        else:
            reasons[cap.name] = why
    if not fitting:
        raise NoRoom(f"{what} ({vcpus} vCPU, {memory_mib} MiB)", reasons)
    return min(fitting, key=lambda c: (-c.free_mib, c.vcpus_allocated, c.name))

"""Placement: which host takes a new (or moving) VM. Pure functions over host capacities (core layer).

A host qualifies when it is reachable, not draining, and has room: memory (allocated + new <=
total - reserve) and vCPUs (allocated + new <= pCPUs x ratio), counting the VMs that run there.
Among those, the one with the most free memory wins (ties: fewest allocated vCPUs, then name), which
spreads VMs the way a provider wants: the emptiest host first. A refusal names every host and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from vmdeck.errors import Conflict

__all__ = ["Capacity", "rejection", "choose_host", "NoRoom"]


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
        return (f"needs {memory_mib} MiB, {cap.free_mib} MiB free ({cap.memory_mib} total, "
                f"{cap.memory_allocated_mib} allocated, {cap.reserve_mib} reserved)")
    if cap.vcpus_allocated + vcpus > cap.vcpu_limit:
        return (f"needs {vcpus} vCPUs, {max(0, cap.vcpu_limit - cap.vcpus_allocated)} left "
                f"({cap.pcpus} pCPUs x {cap.vcpu_ratio:g}, {cap.vcpus_allocated} allocated)")
    return None


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

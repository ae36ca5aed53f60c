"""One inventory across hosts: every VM with its host, and every host's capacity (core layer).

Each host is asked in parallel under the fleet's deadline (vmdeck.cluster.fleet); a host that does
not answer is listed as unreachable with the reason, and the VMs of the others are still listed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vmdeck.cluster.fleet import Answer, Fleet
from vmdeck.cluster.placement import Capacity
from vmdeck.cluster.registry import HostEntry
from vmdeck.host.connection import Host
from vmdeck.vm.inventory import VmSummary, list_vms
from vmdeck.vm.state import ACTIVE

__all__ = ["FleetInventory", "list_everywhere", "capacities", "HostReport", "host_reports", "capacity_of"]


@dataclass(frozen=True)
class FleetInventory:
    vms: list[VmSummary]
    unreachable: dict[str, str]  # host name -> why


def list_everywhere(fleet: Fleet, *, deadline: float | None = None) -> FleetInventory:
    """Every VM on every host (one bulk query per host, all hosts at once)."""
    answers = fleet.each(lambda host, entry: [dataclasses.replace(vm, host=entry.name) for vm in list_vms(host)],
                         deadline=deadline)
    vms = [vm for answer in answers if answer.value for vm in answer.value]
    down = {a.entry.name: str(a.error) for a in answers if a.error is not None}
    return FleetInventory(sorted(vms, key=lambda vm: (vm.name, vm.host)), down)


def capacity_of(host: Host, entry: HostEntry) -> Capacity:
    """What one host has and what its running VMs take (getInfo + the bulk VM list)."""
    _arch, memory_mib, pcpus = host.conn.info()
    running = [vm for vm in list_vms(host) if vm.state in ACTIVE]
    return Capacity(name=entry.name, reachable=True, reason="", draining=entry.draining, pcpus=int(pcpus),
                    memory_mib=int(memory_mib), vcpu_ratio=entry.vcpu_ratio, reserve_mib=entry.reserve_mib,
                    vcpus_allocated=sum(vm.vcpus for vm in running),
                    memory_allocated_mib=sum(vm.memory_mib for vm in running), vms_running=len(running),
                    running=frozenset(vm.name for vm in running))


def _as_capacity(answer: Answer[Capacity]) -> Capacity:
    if answer.value is not None:
        return answer.value
    entry = answer.entry
    return Capacity(name=entry.name, reachable=False, reason=str(answer.error), draining=entry.draining,
                    vcpu_ratio=entry.vcpu_ratio, reserve_mib=entry.reserve_mib)


def capacities(fleet: Fleet, *, deadline: float | None = None) -> list[Capacity]:
    return [_as_capacity(a) for a in fleet.each(capacity_of, deadline=deadline)]


@dataclass(frozen=True)
class HostReport:
    """A row of `vmdeck host list`: the registry entry, its capacity, versions and KVM (if probed)."""

    name: str
    uri: str
    reachable: bool
    reason: str
    draining: bool
    vcpu_ratio: float
    reserve_mib: int
    pcpus: int
    vcpus_allocated: int
    vcpu_limit: int
    memory_mib: int
    memory_allocated_mib: int
    memory_free_mib: int
    vms_running: int
    libvirt_version: str | None = None
    qemu_version: str | None = None
    kvm_usable: bool | None = None  # None: never probed (see `vmdeck host check`)
    answered_in_s: float | None = None
    # Of the allocation: what creates placed here hold until their VM runs, as placement counts it.
    pending_vcpus: int = 0
    pending_mib: int = 0


def _report(host: Host, entry: HostEntry) -> tuple[Capacity, str, str, bool | None]:
    from vmdeck.host.accel import cached_kvm_verdict
    from vmdeck.host.capabilities import host_facts

    cap = capacity_of(host, entry)
    facts = host_facts(host)
    verdict = cached_kvm_verdict(facts)
    return cap, facts.libvirt_version, facts.qemu_version, verdict.usable if verdict else None


def host_reports(fleet: Fleet, *, deadline: float | None = None) -> list[HostReport]:
    """Every registered host as placement sees it: the creates in progress count in the allocation."""
    from vmdeck.cluster.pending import PlacementBook
    from vmdeck.cluster.placement import with_pending

    answers = fleet.each(_report, deadline=deadline)
    claims = PlacementBook(fleet.registry.location).live_claims()
    caps = with_pending([a.value[0] if a.value is not None else _as_capacity(Answer(a.entry, None, a.error))
                         for a in answers], [(c.host, c.vm, c.vcpus, c.memory_mib) for c in claims])
    rows = []
    for answer, cap in zip(answers, caps, strict=True):
        entry = answer.entry
        _cap, libvirt_version, qemu_version, kvm = answer.value if answer.value is not None else (cap, None, None, None)
        rows.append(HostReport(
            name=entry.name, uri=entry.connect_uri, reachable=cap.reachable, reason=cap.reason,
            draining=entry.draining, vcpu_ratio=entry.vcpu_ratio, reserve_mib=entry.reserve_mib, pcpus=cap.pcpus,
            vcpus_allocated=cap.vcpus_allocated, vcpu_limit=cap.vcpu_limit, memory_mib=cap.memory_mib,
            memory_allocated_mib=cap.memory_allocated_mib, memory_free_mib=cap.free_mib,
            vms_running=cap.vms_running, libvirt_version=libvirt_version, qemu_version=qemu_version,
            kvm_usable=kvm, answered_in_s=round(answer.seconds, 3), pending_vcpus=cap.pending_vcpus,
            pending_mib=cap.pending_mib))
    return rows

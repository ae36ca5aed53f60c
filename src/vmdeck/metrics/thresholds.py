"""Conditions worth telling an operator, from the latest samples (core layer, pure).

- a VM pinned at 100 % CPU: every one of its vCPUs busy (CPU % >= 90 per vCPU) in each of the
  last `PINNED_SAMPLES` samples (30 s at the default 10 s pace), not one busy moment;
- a disk whose storage pool is over 90 % allocated: the disk (a growing qcow2 above all) can no
  longer count on room to grow;
- a host whose running VMs hold more vCPUs than its CPUs x its vCPU ratio (the placement limit,
  `vmdeck host add --vcpu-ratio`, 4 by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vmdeck.metrics.sample import HostFigures, VmCounters

__all__ = ["PINNED_PCT_PER_VCPU", "PINNED_SAMPLES", "POOL_FULL_RATIO", "PoolUsage", "Notice", "cpu_pinned",
           "disk_pool_full", "host_overcommitted", "notices"]

PINNED_PCT_PER_VCPU = 90.0
PINNED_SAMPLES = 3
POOL_FULL_RATIO = 0.9


@dataclass(frozen=True)
class PoolUsage:
    name: str
    path: str  # the folder behind the pool: a disk whose file is directly in it belongs to it
    capacity_bytes: int
    allocation_bytes: int

    @property
    def ratio(self) -> float:
        return self.allocation_bytes / self.capacity_bytes if self.capacity_bytes else 0.0


@dataclass(frozen=True)
class Notice:
    kind: str  # "cpu_pinned" | "disk_pool_full" | "host_vcpu_ratio"
    subject: str  # the VM's or the host's name
    message: str
    project: str | None = None  # the VM's project (filtering for non-administrators); None: the host's


def cpu_pinned(cpu_history: Sequence[float | None], vcpus: int) -> bool:
    """True when each of the last PINNED_SAMPLES CPU readings is at least 90 % of all vCPUs busy."""
    recent = list(cpu_history)[-PINNED_SAMPLES:]
    if len(recent) < PINNED_SAMPLES or vcpus <= 0:
        return False
    return all(v is not None and v >= PINNED_PCT_PER_VCPU * vcpus for v in recent)


def pool_of(path: str | None, pools: Sequence[PoolUsage]) -> PoolUsage | None:
    if not path:
        return None
    folder = path.rsplit("/", 1)[0] or "/"
    return next((p for p in pools if p.path.rstrip("/") == folder.rstrip("/")), None)


def disk_pool_full(vm: VmCounters, pools: Sequence[PoolUsage]) -> list[tuple[str, PoolUsage]]:
    """(disk, its pool) for each disk of `vm` whose pool is over POOL_FULL_RATIO allocated."""
    found = []
    for block in vm.blocks:
        pool = pool_of(block.path, pools)
        if pool is not None and pool.ratio > POOL_FULL_RATIO:
            found.append((block.device, pool))
    return found


def host_overcommitted(host: HostFigures, vcpu_ratio: float) -> bool:
    return host.pcpus > 0 and host.vcpus_allocated > host.pcpus * vcpu_ratio


def notices(vms: Sequence[VmCounters], cpu: Mapping[str, Sequence[float | None]], pools: Sequence[PoolUsage],
            host: HostFigures, vcpu_ratio: float) -> list[Notice]:
    """Every condition that holds now, as one-line messages for the pages."""
    found = []
    for vm in vms:
        if vm.running and cpu_pinned(cpu.get(vm.name, ()), vm.vcpus):
            found.append(Notice("cpu_pinned", vm.name, f"VM {vm.name} has kept all {vm.vcpus} vCPU(s) at 100 % "
                                f"for the last {PINNED_SAMPLES} samples", vm.project))
        for device, pool in disk_pool_full(vm, pools):
            found.append(Notice("disk_pool_full", vm.name, f"disk {device} of VM {vm.name} is in storage pool "
                                f"{pool.name}, {pool.ratio * 100:.0f} % allocated (over "
                                f"{POOL_FULL_RATIO * 100:.0f} %)", vm.project))
    if host_overcommitted(host, vcpu_ratio):
        found.append(Notice("host_vcpu_ratio", host.name, f"host {host.name}: running VMs hold "
                            f"{host.vcpus_allocated} vCPUs on {host.pcpus} CPUs, over its ratio of {vcpu_ratio:g}"))
    return found

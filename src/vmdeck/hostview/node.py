"""The host itself as the host page charts it (hostview layer): CPU busy time and memory use, through
libvirt's node statistics (virNodeGetCPUStats / virNodeGetMemoryStats), so a remote host works too.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host

__all__ = ["NodeSample", "node_sample", "cpu_percent"]


@dataclass(frozen=True)
class NodeSample:
    busy_ns: int  # all CPUs together: user + kernel
    total_ns: int  # busy + idle + iowait
    memory_total_mib: float | None
    memory_used_mib: float | None  # total - free - buffers - cached, as `free` counts "used"


def node_sample(host: Host) -> NodeSample:
    cpu = host.conn.cpu_stats()
    busy = cpu.get("user", 0) + cpu.get("kernel", 0)
    total = busy + cpu.get("idle", 0) + cpu.get("iowait", 0)
    try:
        memory = host.conn.memory_stats()
    except VmdeckError:
        # libvirt's test driver has no memory statistics: the chart stays blank rather than invented.
        return NodeSample(busy, total, None, None)
    total_kib = memory.get("total", 0)
    free_kib = sum(memory.get(key, 0) for key in ("free", "buffers", "cached"))
    return NodeSample(busy, total, total_kib / 1024, max(0, total_kib - free_kib) / 1024)


def cpu_percent(before: NodeSample, after: NodeSample) -> float | None:
    """Busy share of all host CPUs between two samples, 0..100 (None when no time passed)."""
    elapsed = after.total_ns - before.total_ns
    if elapsed <= 0:
        return None
    return max(0.0, min(100.0, 100.0 * (after.busy_ns - before.busy_ns) / elapsed))

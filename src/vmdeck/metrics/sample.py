"""One sample of every VM on a host: the counters of one bulk libvirt call, turned into plain data (core layer).

A sample is one virConnectGetAllDomainStats (state, vCPU, balloon, CPU total, block and interface
counters; NOWAIT, so a VM stuck in a job answers with what is known) and libvirt's node statistics.
The guest-RAM-touched and TCG-code-cache figures need a walk of QEMU's /proc/PID/smaps, a few ms
per GiB resident: they are read at a slower pace (`detail=True`) and carried between samples.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.hostview.memory import read_memory
from vmdeck.hostview.node import NodeSample, node_sample
from vmdeck.hostview.process import read_libvirt_record
from vmdeck.vm.project import domain_project

__all__ = ["BlockCounters", "NetCounters", "VmCounters", "HostFigures", "Sample", "SAMPLE_KINDS", "take_sample",
           "vm_counters"]

SAMPLE_KINDS = ("state", "vcpu", "balloon", "cpu_total", "block", "interface")
RUNNING_CODES = (1, 2, 3)  # libvirt's running, blocked, paused: the QEMU process exists


@dataclass(frozen=True)
class BlockCounters:
    device: str  # target name: vda, sdb ...
    path: str | None
    read_bytes: int
    read_requests: int
    write_bytes: int
    write_requests: int
    capacity_bytes: int | None
    allocation_bytes: int | None


@dataclass(frozen=True)
class NetCounters:
    device: str  # the host side: vnet0, tap1 ...
    receive_bytes: int
    receive_packets: int
    transmit_bytes: int
    transmit_packets: int


@dataclass(frozen=True)
class VmCounters:
    name: str
    project: str | None
    state_code: int  # libvirt's virDomainState, as exporters report it
    vcpus: int
    maximum_memory_bytes: int
    memory_usage_bytes: int  # the balloon's current size: what the guest has now
    cpu_time_ns: int | None
    run_delay_ns: int | None  # all vCPU threads together: time runnable but waiting for a host CPU
    rss_bytes: int | None
    blocks: tuple[BlockCounters, ...] = ()
    nets: tuple[NetCounters, ...] = ()
    touched_bytes: int | None = None  # guest RAM the guest has touched (smaps, detail pace)
    tcg_cache_bytes: int | None = None  # TCG's translated-code buffers, resident (0 under KVM)
    uuid: str = ""  # keys the VM's history: a new VM under an old name does not inherit it

    @property
    def running(self) -> bool:
        return self.state_code in RUNNING_CODES


@dataclass(frozen=True)
class HostFigures:
    name: str
    up: bool
    pcpus: int
    memory_total_bytes: int | None
    vcpus_allocated: int  # vCPUs of running VMs
    memory_allocated_bytes: int  # maximum memory of running VMs
    node: NodeSample | None = None


@dataclass(frozen=True)
class Sample:
    taken_at: float  # epoch seconds
    monotonic: float
    host: HostFigures
    vms: tuple[VmCounters, ...] = field(default_factory=tuple)
    collect_ms: float = 0.0


def _int(stats: dict[str, Any], key: str) -> int | None:
    value = stats.get(key)
    return int(value) if value is not None else None


def vm_counters(name: str, project: str | None, stats: dict[str, Any], uuid: str = "") -> VmCounters:
    """VmCounters from one VM's record of getAllDomainStats (pure: the unit tests feed it dicts)."""
    vcpus = int(stats.get("vcpu.current", stats.get("vcpu.maximum", 0)))
    delays = [int(stats[k]) for k in stats if k.startswith("vcpu.") and k.endswith(".delay")]
    blocks = []
    for i in range(int(stats.get("block.count", 0))):
        pre = f"block.{i}."
        if f"{pre}name" not in stats:
            continue
        blocks.append(BlockCounters(
            device=str(stats[f"{pre}name"]), path=stats.get(f"{pre}path"),
            read_bytes=int(stats.get(f"{pre}rd.bytes", 0)), read_requests=int(stats.get(f"{pre}rd.reqs", 0)),
            write_bytes=int(stats.get(f"{pre}wr.bytes", 0)), write_requests=int(stats.get(f"{pre}wr.reqs", 0)),
            capacity_bytes=_int(stats, f"{pre}capacity"), allocation_bytes=_int(stats, f"{pre}allocation")))
    nets = []
    for i in range(int(stats.get("net.count", 0))):
        pre = f"net.{i}."
        if f"{pre}name" not in stats:
            continue
        nets.append(NetCounters(
            device=str(stats[f"{pre}name"]),
            receive_bytes=int(stats.get(f"{pre}rx.bytes", 0)), receive_packets=int(stats.get(f"{pre}rx.pkts", 0)),
            transmit_bytes=int(stats.get(f"{pre}tx.bytes", 0)), transmit_packets=int(stats.get(f"{pre}tx.pkts", 0))))
    rss = _int(stats, "balloon.rss")
    return VmCounters(
        name=name, project=project, state_code=int(stats.get("state.state", 0)), vcpus=vcpus,
        maximum_memory_bytes=int(stats.get("balloon.maximum", 0)) * 1024,
        memory_usage_bytes=int(stats.get("balloon.current", stats.get("balloon.maximum", 0))) * 1024,
        cpu_time_ns=_int(stats, "cpu.time"), run_delay_ns=sum(delays) if delays else None,
        rss_bytes=rss * 1024 if rss is not None else None, blocks=tuple(blocks), nets=tuple(nets), uuid=uuid)


def _smaps_figures(name: str, max_kib: int, local: bool) -> tuple[int | None, int | None]:
    """(guest RAM touched, TCG code cache) in bytes from QEMU's smaps; (None, None) when not readable here."""
    if not local:
        return None, None
    record = read_libvirt_record(name)
    if record is None or record.pid is None:
        return None, None
    memory = read_memory(record.pid, max_kib, max_kib, {}, detailed=True)
    if memory is None:
        return None, None
    touched = memory.guest_ram_rss_kib * 1024 if memory.guest_ram_rss_kib is not None else None
    tcg = memory.tcg_code_cache_rss_kib * 1024 if memory.tcg_code_cache_rss_kib is not None else None
    return touched, tcg


def take_sample(host: Host, host_name: str, *, projects: Callable[[], dict[str, str | None]] | None = None,
                detail: bool = False, previous: Sample | None = None, pcpus: int | None = None) -> Sample:
    """One bulk stats call for every VM, plus the node's CPU and memory counters.

    `projects`: the VM -> project map the server already keeps (its inventory); a VM it does not know
    costs one metadata read. `detail`: also read smaps for touched RAM and the TCG cache (else the
    previous sample's figures are carried over).
    """
    started = time.monotonic()
    known = projects() if projects is not None else {}
    carried = {vm.name: vm for vm in previous.vms} if previous is not None else {}
    records = host.conn.domain_stats(SAMPLE_KINDS)
    vms = []
    for dom, stats in records:
        name = dom.name
        project = known[name] if name in known else domain_project(dom)
        if "vcpu.maximum" not in stats or "balloon.maximum" not in stats:
            # QEMU reports these for shut-off VMs too; drivers that do not (the test driver) cost one call.
            _state, max_kib, cur_kib, count, cpu_ns = dom.info()
            stats = {"vcpu.maximum": count, "balloon.maximum": max_kib, "balloon.current": cur_kib,
                     **({"cpu.time": cpu_ns} if cpu_ns else {}), **stats}
        vm = vm_counters(name, project, stats, dom.uuid())  # the binding's own copy: no RPC
        if vm.running:
            before = carried.get(name)
            touched, tcg = (before.touched_bytes, before.tcg_cache_bytes) if before is not None else (None, None)
            if detail or before is None:
                with contextlib.suppress(OSError, ValueError):
                    touched, tcg = _smaps_figures(name, vm.maximum_memory_bytes // 1024, host.is_local)
            vm = VmCounters(**{**vm.__dict__, "touched_bytes": touched, "tcg_cache_bytes": tcg})
        vms.append(vm)
    node = None
    memory_total = None
    with contextlib.suppress(VmdeckError):
        node = node_sample(host)
        memory_total = int(node.memory_total_mib * 1024 * 1024) if node.memory_total_mib else None
    if pcpus is None:
        pcpus = host.conn.info()[2]
    running = [vm for vm in vms if vm.running]
    figures = HostFigures(name=host_name, up=True, pcpus=pcpus, memory_total_bytes=memory_total,
                          vcpus_allocated=sum(vm.vcpus for vm in running),
                          memory_allocated_bytes=sum(vm.maximum_memory_bytes for vm in running), node=node)
    return Sample(taken_at=time.time(), monotonic=time.monotonic(), host=figures,
                  vms=tuple(sorted(vms, key=lambda v: v.name)),
                  collect_ms=round((time.monotonic() - started) * 1000, 1))

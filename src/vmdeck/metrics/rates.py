"""Per-second rates of one VM, and the host's totals, from two samples (core layer, pure).

The figures history keeps and `vmdeck top` shows: CPU % (of one host CPU, as top counts a process:
two busy vCPUs read 200), resident memory, guest RAM touched, disk and network bytes per second.
A counter that went back (the VM restarted) gives no rate, not a negative one.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmdeck.hostview.node import cpu_percent
from vmdeck.hostview.rates import delta_per_s
from vmdeck.metrics.sample import Sample, VmCounters

__all__ = ["FIELDS", "Rates", "vm_rates", "host_rates", "sample_rates"]

# The order of the values in history files and answers; units in the names.
FIELDS = ("cpu_pct", "rss_bytes", "touched_bytes", "disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps")


@dataclass(frozen=True)
class Rates:
    cpu_pct: float | None = None
    rss_bytes: float | None = None
    touched_bytes: float | None = None
    disk_read_bps: float | None = None
    disk_write_bps: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None

    def values(self) -> tuple[float | None, ...]:
        return tuple(getattr(self, f) for f in FIELDS)

    def as_dict(self) -> dict[str, float | None]:
        return {f: getattr(self, f) for f in FIELDS}


def _sum_delta(now: list[int], before: list[int], interval: float) -> float | None:
    return delta_per_s(sum(now), sum(before), interval) if now and len(now) == len(before) else None


def vm_rates(now: VmCounters, before: VmCounters | None, interval: float) -> Rates:
    """Rates of one VM over `interval` seconds; a VM seen once (or not running) has levels, no rates."""
    if not now.running:
        return Rates()
    cpu = disk_r = disk_w = rx = tx = None
    if before is not None and before.running and interval > 0:
        if now.cpu_time_ns is not None and before.cpu_time_ns is not None:
            cpu_s = delta_per_s(now.cpu_time_ns, before.cpu_time_ns, interval)
            cpu = round(cpu_s / 1e9 * 100, 1) if cpu_s is not None else None
        old_blocks = {b.device: b for b in before.blocks}
        pairs = [(b, old_blocks[b.device]) for b in now.blocks if b.device in old_blocks]
        disk_r = _sum_delta([b.read_bytes for b, _ in pairs], [o.read_bytes for _, o in pairs], interval)
        disk_w = _sum_delta([b.write_bytes for b, _ in pairs], [o.write_bytes for _, o in pairs], interval)
        old_nets = {n.device: n for n in before.nets}
        npairs = [(n, old_nets[n.device]) for n in now.nets if n.device in old_nets]
        rx = _sum_delta([n.receive_bytes for n, _ in npairs], [o.receive_bytes for _, o in npairs], interval)
        tx = _sum_delta([n.transmit_bytes for n, _ in npairs], [o.transmit_bytes for _, o in npairs], interval)
    return Rates(cpu_pct=cpu, rss_bytes=now.rss_bytes, touched_bytes=now.touched_bytes, disk_read_bps=disk_r,
                 disk_write_bps=disk_w, net_rx_bps=rx, net_tx_bps=tx)


def _total(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known), 3) if known else None


def host_rates(vms: dict[str, Rates], now: Sample, before: Sample | None) -> Rates:
    """The host's line: the VMs' figures added up, except CPU: the whole host's busy share x its CPUs
    (so it reads on the same scale as a VM's, 100 per busy CPU), from libvirt's node statistics."""
    cpu = None
    if before is not None and before.host.node is not None and now.host.node is not None:
        share = cpu_percent(before.host.node, now.host.node)
        cpu = round(share * now.host.pcpus, 1) if share is not None else None
    if cpu is None:
        cpu = _total([r.cpu_pct for r in vms.values()])
    rates = list(vms.values())
    return Rates(cpu_pct=cpu, rss_bytes=_total([r.rss_bytes for r in rates]),
                 touched_bytes=_total([r.touched_bytes for r in rates]),
                 disk_read_bps=_total([r.disk_read_bps for r in rates]),
                 disk_write_bps=_total([r.disk_write_bps for r in rates]),
                 net_rx_bps=_total([r.net_rx_bps for r in rates]), net_tx_bps=_total([r.net_tx_bps for r in rates]))


def sample_rates(now: Sample, before: Sample | None) -> tuple[dict[str, Rates], Rates]:
    """(rates of every VM by name, the host's) between two samples."""
    interval = now.monotonic - before.monotonic if before is not None else 0.0
    old = {vm.name: vm for vm in before.vms} if before is not None else {}
    vms = {vm.name: vm_rates(vm, old.get(vm.name), interval) for vm in now.vms}
    return vms, host_rates(vms, now, before)

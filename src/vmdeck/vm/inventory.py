"""What VMs exist and what they look like: `list` in one bulk libvirt call, `show` for one VM."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import libvirt

from vmdeck.domxml.migration import record_from_domain
from vmdeck.domxml.parse import DomainView, parse_domain
from vmdeck.host.connection import Host, libvirt_errors
from vmdeck.vm.state import state_name

__all__ = ["VmSummary", "list_vms", "VmDetails", "show_vm"]


@dataclass(frozen=True)
class VmSummary:
    name: str
    state: str
    vcpus: int
    memory_mib: int
    persistent: bool
    cpu_time_ns: int | None
    rss_kib: int | None
    host: str = "local"  # the registry's name for the host it runs on (vmdeck.cluster)


def list_vms(host: Host) -> list[VmSummary]:
    """Every VM on the host from bulk calls (getAllDomainStats + the transient list), not one call per VM."""
    stats_kinds = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_BALLOON \
        | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    with libvirt_errors("list VMs"):
        # NOWAIT: a VM stuck in a long job is reported with what is known instead of stalling the list.
        records = host.conn.getAllDomainStats(stats_kinds, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT)
        # Persistence is not a stat: one more bulk call names the transient VMs (usually none).
        transient = {d.name() for d in host.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)}
    summaries = []
    for dom, stats in records:
        if "vcpu.maximum" not in stats or "balloon.maximum" not in stats:
            # QEMU reports these for shut-off VMs too; drivers that do not (the test driver) cost one call.
            with libvirt_errors(f"list {dom.name()}"):
                _state, max_kib, _cur, vcpus, _cpu = dom.info()
            stats = {**stats, "vcpu.maximum": vcpus, "balloon.maximum": max_kib}
        summaries.append(
            VmSummary(
                name=dom.name(),  # local to the binding: no RPC
                state=state_name(int(stats.get("state.state", 0))),
                vcpus=int(stats.get("vcpu.maximum", stats.get("vcpu.current", 0))),
                memory_mib=int(stats.get("balloon.maximum", 0)) // 1024,
                persistent=dom.name() not in transient,
                cpu_time_ns=stats.get("cpu.time"),
                rss_kib=stats.get("balloon.rss"),
            )
        )
    return sorted(summaries, key=lambda s: s.name)


@dataclass(frozen=True)
class VmDetails:
    view: DomainView
    state: str
    autostart: bool
    persistent: bool
    last_migration: dict[str, Any] | None = None  # vmdeck.domxml.migration: downtime, total time, outcome

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self.view)
        data.update(state=self.state, autostart=self.autostart, persistent=self.persistent,
                    last_migration=self.last_migration)
        data["accel"] = "KVM" if self.view.domain_type == "kvm" else "TCG"
        return data


def show_vm(host: Host, name: str) -> VmDetails:
    dom = host.lookup(name)
    with libvirt_errors(f"show {name}"):
        state = state_name(dom.state()[0])
        # The live XML has what only a running VM knows: VNC ports, tap names, PCI addresses.
        xml = dom.XMLDesc(0)
        return VmDetails(view=parse_domain(xml), state=state, autostart=bool(dom.autostart()),
                         persistent=bool(dom.isPersistent()), last_migration=record_from_domain(xml))

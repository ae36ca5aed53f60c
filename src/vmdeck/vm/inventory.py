"""What VMs exist and what they look like: `list` in one bulk libvirt call, `show` for one VM."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import libvirt

from vmdeck.host.connection import Host, libvirt_errors
from vmdeck.vm.state import state_name

if TYPE_CHECKING:  # the XML parser (lxml) is imported by show_vm only: `vmdeck list` starts faster without it
    from vmdeck.domxml.parse import DomainView

__all__ = ["VmSummary", "list_vms", "summarize_vm", "summary_from_stats", "VmDetails", "show_vm"]


@dataclass(frozen=True)
class VmSummary:
    name: str
    state: str
    vcpus: int
    memory_mib: int
    persistent: bool
    cpu_time_ns: int | None
    rss_kib: int | None


STATS_KINDS = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_BALLOON \
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
# NOWAIT: a VM stuck in a long job is reported with what is known instead of stalling the list.
STATS_FLAGS = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT


def list_vms(host: Host, *, usage: bool = True) -> list[VmSummary]:
    """Every VM on the host from bulk calls (getAllDomainStats + the transient list), not one call per VM.

    usage=False leaves out RSS (cpu_time_ns stays for running VMs): the balloon statistics behind RSS cost
    a QMP round trip to every running QEMU, the bulk of the call on a busy host. `vmdeck list`'s table
    does not show them, so it asks for the state, vCPUs and memory only.
    """
    if not usage:
        return _list_light(host)
    with libvirt_errors("list VMs"):
        records = host.conn.getAllDomainStats(STATS_KINDS, STATS_FLAGS)
        # Persistence is not a stat: one more bulk call names the transient VMs (usually none).
        transient = {d.name() for d in host.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)}
    summaries = [summary_from_stats(dom, stats, dom.name() not in transient) for dom, stats in records]
    return sorted(summaries, key=lambda s: s.name)


def _list_light(host: Host) -> list[VmSummary]:
    # Shut-off VMs: one bulk stats call answered from their definitions. Running VMs: virDomainGetInfo
    # each, which libvirt answers from its own memory and /proc (no QEMU monitor round trip).
    with libvirt_errors("list VMs"):
        records = host.conn.getAllDomainStats(
            libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_BALLOON,
            libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_INACTIVE)
        summaries = [summary_from_stats(dom, stats, True) for dom, stats in records]
        transient = {d.name() for d in host.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)}
        for dom in host.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                state, max_kib, _cur, vcpus, cpu_ns = dom.info()
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:  # went away meanwhile (transient)
                    continue
                raise
            summaries.append(VmSummary(name=dom.name(), state=state_name(state), vcpus=vcpus,
                                       memory_mib=max_kib // 1024, persistent=dom.name() not in transient,
                                       cpu_time_ns=cpu_ns or None, rss_kib=None))
    return sorted(summaries, key=lambda s: s.name)


def summarize_vm(host: Host, name: str) -> VmSummary:
    """One VM's summary, as list_vms gives it, from the same stats call restricted to that VM."""
    dom = host.lookup(name)
    with libvirt_errors(f"list {name}"):
        records = host.conn.domainListGetStats([dom], STATS_KINDS, STATS_FLAGS)
        persistent = bool(dom.isPersistent())
    return summary_from_stats(dom, records[0][1] if records else {}, persistent)


def summary_from_stats(dom: libvirt.virDomain, stats: dict[str, Any], persistent: bool) -> VmSummary:
    if "vcpu.maximum" not in stats or "balloon.maximum" not in stats:
        # QEMU reports these for shut-off VMs too; drivers that do not (the test driver) cost one call.
        with libvirt_errors(f"list {dom.name()}"):
            _state, max_kib, _cur, vcpus, _cpu = dom.info()
        stats = {**stats, "vcpu.maximum": vcpus, "balloon.maximum": max_kib}
    return VmSummary(
        name=dom.name(),  # local to the binding: no RPC
        state=state_name(int(stats.get("state.state", 0))),
        vcpus=int(stats.get("vcpu.maximum", stats.get("vcpu.current", 0))),
        memory_mib=int(stats.get("balloon.maximum", 0)) // 1024,
        persistent=persistent,
        cpu_time_ns=stats.get("cpu.time"),
        rss_kib=stats.get("balloon.rss"),
    )


@dataclass(frozen=True)
class VmDetails:
    view: DomainView
    state: str
    autostart: bool
    persistent: bool

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self.view)
        data.update(state=self.state, autostart=self.autostart, persistent=self.persistent)
        data["accel"] = "KVM" if self.view.domain_type == "kvm" else "TCG"
        return data


def show_vm(host: Host, name: str) -> VmDetails:
    from vmdeck.domxml.parse import parse_domain

    dom = host.lookup(name)
    with libvirt_errors(f"show {name}"):
        state = state_name(dom.state()[0])
        # The live XML has what only a running VM knows: VNC ports, tap names, PCI addresses.
        view = parse_domain(dom.XMLDesc(0))
        return VmDetails(view=view, state=state, autostart=bool(dom.autostart()), persistent=bool(dom.isPersistent()))

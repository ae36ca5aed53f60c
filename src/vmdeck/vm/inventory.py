"""What VMs exist and what they look like: `list` in one bulk libvirt call, `show` for one VM."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Domain
from vmdeck.vm.project import domain_project
from vmdeck.vm.state import allowed_actions, capabilities, state_name

if TYPE_CHECKING:  # the XML parser (lxml) is imported by show_vm only: `vmdeck list` starts faster without it
    from vmdeck.domxml.parse import DomainView

__all__ = ["VmSummary", "list_vms", "summarize_vm", "summary_from_stats", "with_state", "VmDetails", "show_vm"]


@dataclass(frozen=True)
class VmSummary:
    name: str
    state: str
    vcpus: int
    memory_mib: int
    persistent: bool
    cpu_time_ns: int | None
    rss_kib: int | None
    # The verbs this state accepts (vmdeck.vm.state.POWER_VERBS): clients show exactly these.
    allowed_actions: list[str] = field(default_factory=list)
    host: str = "local"  # the registry's name for the host it runs on (vmdeck.cluster)
    project: str | None = None  # from vmdeck's metadata: None for VMs vmdeck did not create


STATS_KINDS = ("state", "vcpu", "balloon", "cpu_total")


def list_vms(host: Host, *, usage: bool = True) -> list[VmSummary]:
    """Every VM on the host from bulk calls (getAllDomainStats + the transient list), not one call per VM.

    usage=False leaves out RSS (cpu_time_ns stays for running VMs): the balloon statistics behind RSS cost
    a QMP round trip to every running QEMU, the bulk of the call on a busy host. `vmdeck list`'s table
    does not show them, so it asks for the state, vCPUs and memory only.
    """
    if not usage:
        return _list_light(host)
    # One bulk call; NOWAIT inside: a VM stuck in a long job is reported with what is known.
    records = host.conn.domain_stats(STATS_KINDS)
    # Persistence is not a stat: one more bulk call names the transient VMs (usually none).
    transient = {d.name for d in host.conn.domains(transient=True)}
    return sorted((summary_from_stats(dom, stats, dom.name not in transient) for dom, stats in records),
                  key=lambda s: s.name)


def _list_light(host: Host) -> list[VmSummary]:
    # Shut-off VMs: one bulk stats call answered from their definitions. Running VMs: virDomainGetInfo
    # each, which libvirt answers from its own memory and /proc (no QEMU monitor round trip).
    from vmdeck.errors import NotFound

    summaries = [summary_from_stats(dom, stats, True)
                 for dom, stats in host.conn.domain_stats(("state", "vcpu", "balloon"), inactive_only=True)]
    transient = {d.name for d in host.conn.domains(transient=True)}
    for dom in host.conn.domains(active=True):
        try:
            state, max_kib, _cur, vcpus, cpu_ns = dom.info()
        except NotFound:  # went away meanwhile (a transient VM)
            continue
        summaries.append(VmSummary(name=dom.name, state=state, vcpus=vcpus, memory_mib=max_kib // 1024,
                                   persistent=dom.name not in transient, cpu_time_ns=cpu_ns or None, rss_kib=None,
                                   allowed_actions=allowed_actions(state), project=domain_project(dom)))
    return sorted(summaries, key=lambda s: s.name)


def summarize_vm(host: Host, name: str) -> VmSummary:
    """One VM's summary, as list_vms gives it, from the same stats call restricted to that VM."""
    dom = host.lookup(name)
    records = host.conn.domain_stats(STATS_KINDS, domains=[dom])
    return summary_from_stats(dom, records[0][1] if records else {}, dom.is_persistent())


def summary_from_stats(dom: Domain, stats: dict[str, Any], persistent: bool) -> VmSummary:
    if "vcpu.maximum" not in stats or "balloon.maximum" not in stats:
        # QEMU reports these for shut-off VMs too; drivers that do not (the test driver) cost one call.
        _state, max_kib, _cur, vcpus, _cpu = dom.info()
        stats = {**stats, "vcpu.maximum": vcpus, "balloon.maximum": max_kib}
    state = state_name(int(stats.get("state.state", 0)))
    return VmSummary(
        name=dom.name,  # local to the binding: no RPC
        state=state,
        vcpus=int(stats.get("vcpu.maximum", stats.get("vcpu.current", 0))),
        memory_mib=int(stats.get("balloon.maximum", 0)) // 1024,
        persistent=persistent,
        cpu_time_ns=stats.get("cpu.time"),
        rss_kib=stats.get("balloon.rss"),
        allowed_actions=allowed_actions(state),
        project=domain_project(dom),
    )


def with_state(summary: VmSummary, state: str) -> VmSummary:
    """The same summary in another state (an event said so), with that state's actions."""
    return replace(summary, state=state, allowed_actions=allowed_actions(state))


@dataclass(frozen=True)
class VmDetails:
    view: DomainView
    state: str
    autostart: bool
    persistent: bool
    last_migration: dict[str, Any] | None = None  # vmdeck.domxml.migration: downtime, total time, outcome
    # Values saved for the next boot that differ from the running ones (vmdeck.vm.pending): {"vcpus": 2}.
    pending: dict[str, Any] = field(default_factory=dict)
    # What may change while the VM runs: {"vcpus_max": 4} (None: waits for the next boot).
    live_limits: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self.view)
        data.update(state=self.state, autostart=self.autostart, persistent=self.persistent,
                    allowed_actions=allowed_actions(self.state), last_migration=self.last_migration,
                    can=capabilities(self.state),  # what the pages offer: no page reads the state's name
                    pending=self.pending, live_limits=self.live_limits)
        data["accel"] = "KVM" if self.view.domain_type == "kvm" else "TCG"
        data["project"] = self.view.extra.get("project")
        return data


def show_vm(host: Host, name: str) -> VmDetails:
    from vmdeck.domxml.migration import record_from_domain
    from vmdeck.domxml.parse import parse_domain

    dom = host.lookup(name)
    state = dom.state()[0]
    # The live XML has what only a running VM knows: VNC ports, tap names, PCI addresses.
    xml = dom.xml()
    view = parse_domain(xml)
    from vmdeck.vm.pending import live_limits, read_pending

    return VmDetails(view=view, state=state, autostart=dom.autostart(), persistent=dom.is_persistent(),
                     last_migration=record_from_domain(xml), pending=read_pending(dom, xml),
                     live_limits=live_limits(view) if dom.is_active() else {})

"""What VMs exist and what they look like: `list` in one bulk libvirt call, `show` for one VM."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vmdeck.domxml.migration import record_from_domain
from vmdeck.domxml.parse import DomainView, parse_domain
from vmdeck.host.connection import Host
from vmdeck.vm.state import allowed_actions, state_name

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
    # The verbs this state accepts (vmdeck.vm.state.POWER_VERBS): clients show exactly these.
    allowed_actions: list[str] = field(default_factory=list)
    host: str = "local"  # the registry's name for the host it runs on (vmdeck.cluster)


def list_vms(host: Host) -> list[VmSummary]:
    """Every VM on the host from bulk calls (getAllDomainStats + the transient list), not one call per VM."""
    # One bulk call; NOWAIT inside: a VM stuck in a long job is reported with what is known.
    records = host.conn.domain_stats(("state", "vcpu", "balloon", "cpu_total"))
    # Persistence is not a stat: one more bulk call names the transient VMs (usually none).
    transient = {d.name for d in host.conn.domains(transient=True)}
    summaries = []
    for dom, stats in records:
        if "vcpu.maximum" not in stats or "balloon.maximum" not in stats:
            # QEMU reports these for shut-off VMs too; drivers that do not (the test driver) cost one call.
            _state, max_kib, _cur, vcpus, _cpu = dom.info()
            stats = {**stats, "vcpu.maximum": vcpus, "balloon.maximum": max_kib}
        state = state_name(int(stats.get("state.state", 0)))
        summaries.append(
            VmSummary(
                name=dom.name,  # local to the binding: no RPC
                state=state,
                vcpus=int(stats.get("vcpu.maximum", stats.get("vcpu.current", 0))),
                memory_mib=int(stats.get("balloon.maximum", 0)) // 1024,
                persistent=dom.name not in transient,
                cpu_time_ns=stats.get("cpu.time"),
                rss_kib=stats.get("balloon.rss"),
                allowed_actions=allowed_actions(state),
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
                    allowed_actions=allowed_actions(self.state), last_migration=self.last_migration)
        data["accel"] = "KVM" if self.view.domain_type == "kvm" else "TCG"
        return data


def show_vm(host: Host, name: str) -> VmDetails:
    dom = host.lookup(name)
    state = dom.state()[0]
    # The live XML has what only a running VM knows: VNC ports, tap names, PCI addresses.
    xml = dom.xml()
    return VmDetails(view=parse_domain(xml), state=state, autostart=dom.autostart(), persistent=dom.is_persistent(),
                     last_migration=record_from_domain(xml))

"""How the host CPU runs a VM's code: KVM (hardware virtualization) or TCG (translation), and under
KVM the VM exits by reason (core layer).

Under KVM the guest's instructions run on the real CPU in VMX/SVM non-root
mode; the CPU leaves ("exits") to KVM in root mode only for what the
hardware cannot do alone: port I/O, MMIO to an emulated device, HLT,
interrupt windows ... Each exit costs a round trip, so counting them by
reason is how you see what a guest makes the host do. QEMU (7.1+) reports
them through QMP `query-stats` (provider "kvm"), which libvirt (8.9+) also
folds into its bulk stats as `vcpu.N.<name>.sum`. Under TCG nothing runs in
non-root mode, so there are no exits to count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmdeck.host.capabilities import kvm_module
from vmdeck.hostview.procfs import read_text
from vmdeck.hostview.rates import delta_per_s

__all__ = ["HostCpuFacts", "CpuModeView", "host_cpu_facts", "parse_query_stats", "kvm_stats_from_libvirt",
           "exit_counters", "cpu_mode", "apply_exit_rates", "TCG_NO_EXITS"]

TCG_NO_EXITS = (
    "no VM exits under TCG: QEMU translates the guest's instructions into host code and runs them as "
    "ordinary user-space code in each vCPU thread, so the CPU never enters VMX/SVM non-root mode for "
    "this guest and never exits from it; the cost of virtualization shows up as the vCPU threads' CPU time"
)
KVM_MEANING = (
    "guest code runs directly on the host CPU in VMX/SVM non-root mode; the CPU exits to KVM (root mode) "
    "only for events it cannot handle alone: port I/O, MMIO to emulated devices, HLT, interrupts ..."
)


@dataclass(frozen=True)
class HostCpuFacts:
    extensions: list[str]  # "vmx" (Intel VT-x), "svm" (AMD-V)
    kvm_device: bool
    kvm_module: str | None


def host_cpu_facts(cpuinfo_text: str | None = None) -> HostCpuFacts:
    text = cpuinfo_text if cpuinfo_text is not None else (read_text("/proc/cpuinfo") or "")
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    return HostCpuFacts(extensions=sorted(flags & {"vmx", "svm"}), kvm_device=Path("/dev/kvm").exists(),
                        kvm_module=kvm_module())


def _is_exit_counter(name: str) -> bool:
    return name == "exits" or name.endswith("_exits") or name in ("hypercalls", "insn_emulation", "halt_wakeup")


def parse_query_stats(reply: str | dict[str, Any] | list[Any]) -> dict[str, dict[str, Any]]:
    """QEMU's query-stats reply -> {qom-path or "vm": {stat name: value}} for provider "kvm".

    The reply is a list of StatsResult {"provider", "qom-path" (vcpu target), "stats": [{"name", "value"}]};
    values are ints, lists (histograms) or booleans.
    """
    data = json.loads(reply) if isinstance(reply, str) else reply
    results = data.get("return", []) if isinstance(data, dict) else data
    parsed: dict[str, dict[str, Any]] = {}
    for result in results:
        if result.get("provider") != "kvm":
            continue
        key = result.get("qom-path", "vm")
        parsed.setdefault(key, {}).update({s["name"]: s["value"] for s in result.get("stats", [])})
    return parsed


def exit_counters(per_vcpu: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Sum the scalar exit counters over all vCPUs: {"exits": n, "io_exits": n, ...}."""
    totals: dict[str, int] = {}
    for stats in per_vcpu.values():
        for name, value in stats.items():
            if _is_exit_counter(name) and isinstance(value, int) and not isinstance(value, bool):
                totals[name] = totals.get(name, 0) + value
    return dict(sorted(totals.items()))


_LIBVIRT_VCPU_STAT = re.compile(r"^vcpu\.(\d+)\.([a-z0-9_]+)\.(sum|cur|max)$")


def kvm_stats_from_libvirt(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """libvirt's bulk-stats form of the same data ("vcpu.0.exits.sum" ...) -> {"vcpu N": {name: value}}."""
    per_vcpu: dict[str, dict[str, Any]] = {}
    for key, value in stats.items():
        match = _LIBVIRT_VCPU_STAT.match(key)
        if match and match.group(2) not in ("time", "wait", "delay", "halted", "state"):
            per_vcpu.setdefault(f"vcpu {match.group(1)}", {})[match.group(2)] = value
    return per_vcpu


@dataclass
class CpuModeView:
    host_extensions: list[str]
    kvm_device: bool
    kvm_module: str | None
    accelerator: str  # "KVM" | "TCG"
    why: str  # why this VM runs under that accelerator
    meaning: str
    exits_available: bool
    exits_note: str
    exits: dict[str, int] = field(default_factory=dict)  # cumulative since QEMU started, all vCPUs
    exits_per_s: dict[str, float] = field(default_factory=dict)  # over the last interval


def cpu_mode(facts: HostCpuFacts, domain_type: str, accel_reason: str | None,
             kvm_per_vcpu: dict[str, dict[str, Any]] | None) -> CpuModeView:
    """The CPU-mode section for one VM. `kvm_per_vcpu`: parsed query-stats (None if not asked)."""
    ext = "/".join(facts.extensions) or "none"
    if accel_reason:
        # vmdeck's recorded reason may quote a whole QEMU error: its first sentence is enough here.
        accel_reason = " ".join(accel_reason.split())
        accel_reason = accel_reason if len(accel_reason) <= 160 else accel_reason[:157] + "..."
    if domain_type != "kvm":
        why = accel_reason or "the domain type is 'qemu' (TCG)"
        if not facts.extensions:
            why += f"; the host CPU has no virtualization extensions ({ext})"
        return CpuModeView(facts.extensions, facts.kvm_device, facts.kvm_module, "TCG", why,
                           "QEMU's Tiny Code Generator translates guest instructions block by block into host code",
                           False, TCG_NO_EXITS)
    counters = exit_counters(kvm_per_vcpu or {})
    if counters:
        note = "KVM exit counters from QEMU's query-stats (provider kvm), summed over vCPUs"
    else:
        note = "this QEMU/KVM reports no exit statistics (query-stats needs QEMU 7.1 and Linux 5.14)"
    return CpuModeView(facts.extensions, facts.kvm_device, facts.kvm_module, "KVM", accel_reason or "domain type 'kvm'",
                       KVM_MEANING, bool(counters), note, counters)


def apply_exit_rates(current: CpuModeView, previous: CpuModeView | None, interval_s: float) -> None:
    if previous is None:
        return
    for name, total in current.exits.items():
        rate = delta_per_s(total, previous.exits.get(name), interval_s)
        if rate is not None:
            current.exits_per_s[name] = rate

"""KVM exit statistics: QEMU's documented query-stats reply, libvirt's bulk form, rates, and TCG's answer.

The reply below has the shape QEMU documents for `query-stats` (qapi/stats.json, QEMU 7.1+): a list of
StatsResult objects {"provider": "kvm", "qom-path": ..., "stats": [{"name": ..., "value": ...}]}, one per
vCPU for target "vcpu"; values are integers, histograms (lists) or booleans.
"""

from __future__ import annotations

import json

from vmdeck.hostview.cpumode import (
    TCG_NO_EXITS,
    HostCpuFacts,
    apply_exit_rates,
    cpu_mode,
    exit_counters,
    host_cpu_facts,
    kvm_stats_from_libvirt,
    parse_query_stats,
)


def _vcpu(path: str, exits: int, io: int, halt: int) -> dict:
    return {"provider": "kvm", "qom-path": path, "stats": [
        {"name": "guest_mode", "value": 0},
        {"name": "exits", "value": exits},
        {"name": "io_exits", "value": io},
        {"name": "mmio_exits", "value": 40},
        {"name": "halt_exits", "value": halt},
        {"name": "irq_exits", "value": 7},
        {"name": "halt_poll_fail_hist", "value": [0, 1, 2, 0]},
        {"name": "preemption_reported", "value": False},
    ]}


def _reply(scale: int) -> str:
    return json.dumps({"return": [_vcpu("/machine/unattached/device[0]", 1000 * scale, 300 * scale, 100 * scale),
                                  _vcpu("/machine/unattached/device[2]", 500 * scale, 100 * scale, 200 * scale)]})


FACTS = HostCpuFacts(extensions=["vmx"], kvm_device=True, kvm_module="kvm_intel")


def test_query_stats_reply_parses_per_vcpu() -> None:
    parsed = parse_query_stats(_reply(1))
    assert set(parsed) == {"/machine/unattached/device[0]", "/machine/unattached/device[2]"}
    assert parsed["/machine/unattached/device[0]"]["io_exits"] == 300
    assert parsed["/machine/unattached/device[0]"]["halt_poll_fail_hist"] == [0, 1, 2, 0]
    # Target "vm" results have no qom-path; other providers are ignored.
    vm = parse_query_stats({"return": [{"provider": "kvm", "stats": [{"name": "remote_tlb_flush", "value": 3}]},
                                       {"provider": "other", "stats": [{"name": "x", "value": 1}]}]})
    assert vm == {"vm": {"remote_tlb_flush": 3}}


def test_exit_counters_sum_scalars_only() -> None:
    counters = exit_counters(parse_query_stats(_reply(1)))
    assert counters == {"exits": 1500, "halt_exits": 300, "io_exits": 400, "irq_exits": 14, "mmio_exits": 80}


def test_exit_rates_over_an_interval() -> None:
    first = cpu_mode(FACTS, "kvm", None, parse_query_stats(_reply(1)))
    second = cpu_mode(FACTS, "kvm", None, parse_query_stats(_reply(3)))
    apply_exit_rates(second, first, 2.0)
    assert second.accelerator == "KVM" and second.exits_available
    assert second.exits_per_s["exits"] == 1500.0  # (4500 - 1500) / 2 s
    assert second.exits_per_s["io_exits"] == 400.0
    assert second.exits_per_s["mmio_exits"] == 0.0


def test_libvirt_bulk_form_of_the_same_stats() -> None:
    stats = {"vcpu.0.time": 5, "vcpu.0.delay": 1, "vcpu.0.exits.sum": 1000, "vcpu.0.io_exits.sum": 300,
             "vcpu.1.exits.sum": 500, "vcpu.1.guest_mode.cur": 0, "vcpu.current": 2}
    per_vcpu = kvm_stats_from_libvirt(stats)
    assert per_vcpu == {"vcpu 0": {"exits": 1000, "io_exits": 300}, "vcpu 1": {"exits": 500, "guest_mode": 0}}
    assert exit_counters(per_vcpu) == {"exits": 1500, "io_exits": 300}


def test_tcg_says_plainly_why_there_are_no_exits() -> None:
    view = cpu_mode(HostCpuFacts([], True, "kvm_pvm"), "qemu", "KVM not usable (probe failed): using TCG", None)
    assert view.accelerator == "TCG" and not view.exits_available and view.exits == {}
    assert view.exits_note == TCG_NO_EXITS
    assert "never enters VMX/SVM non-root mode" in view.exits_note
    assert "KVM not usable" in view.why


def test_kvm_without_stats_says_so() -> None:
    view = cpu_mode(FACTS, "kvm", None, {})
    assert not view.exits_available and "no exit statistics" in view.exits_note


def test_host_cpu_flags() -> None:
    facts = host_cpu_facts("processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\nprocessor\t: 1\n")
    assert facts.extensions == ["vmx"]
    assert host_cpu_facts("flags\t: fpu svm\n").extensions == ["svm"]

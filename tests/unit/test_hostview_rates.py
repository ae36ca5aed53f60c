"""Rate math: counters read twice become shares and per-second rates; overcommit; sparklines."""

from __future__ import annotations

from vmdeck.cli.hostview_cmds import History, sparkline
from vmdeck.hostview.rates import delta_per_s, share_pct
from vmdeck.hostview.sched import Overcommit, SchedView, VcpuSched, apply_sched_rates, overcommit


def _vcpu(n: int, tid: int, run_ns: int, delay_ns: int, invol: int) -> VcpuSched:
    return VcpuSched(vcpu=n, tid=tid, user_time_ns=0, system_time_ns=0, run_time_ns=run_ns, run_delay_ns=delay_ns,
                     voluntary_switches=0, involuntary_switches=invol, last_cpu=0, cpus_allowed="0-1", state="R")


def _view(vcpus: list[VcpuSched], emulator_ns: int) -> SchedView:
    return SchedView(vcpus=vcpus, emulator_cpus_allowed="0-1", emulator_run_time_ns=emulator_ns,
                     overcommit=overcommit(2, [2]))


def test_share_and_rate_math() -> None:
    assert share_pct(500_000_000, 1.0) == 50.0
    assert share_pct(1_900_000_000, 2.0) == 95.0
    assert share_pct(-1, 1.0) is None and share_pct(1, 0) is None
    assert delta_per_s(300, 100, 2.0) == 100.0
    assert delta_per_s(100, 300, 2.0) is None  # counter reset: not a rate
    assert delta_per_s(None, 1, 1.0) is None


def test_sched_rates_from_two_readings() -> None:
    before = _view([_vcpu(0, 11, 1_000_000_000, 0, 10), _vcpu(1, 12, 2_000_000_000, 0, 5)], 100_000_000)
    after = _view([_vcpu(0, 11, 2_900_000_000, 200_000_000, 30), _vcpu(1, 12, 2_010_000_000, 0, 5),
                   _vcpu(2, 13, 7, 0, 0)], 150_000_000)
    apply_sched_rates(after, before, 2.0)
    busy, idle, new = after.vcpus
    assert busy.cpu_share_pct == 95.0 and busy.run_delay_pct == 10.0 and busy.involuntary_switches_per_s == 10.0
    assert idle.cpu_share_pct == 0.5
    assert new.cpu_share_pct is None  # a thread without a previous reading has no rate
    assert after.emulator_cpu_share_pct == 2.5 and after.interval_s == 2.0


def test_overcommit() -> None:
    oc = overcommit(2, [2, 1, 4])
    assert oc == Overcommit(host_pcpus=2, running_vms=3, running_vcpus=7, ratio=3.5)
    assert "7 vCPUs share 2 host CPUs" in oc.explanation
    assert overcommit(8, [2]).ratio == 0.25
    assert "a host CPU of its own" in overcommit(8, [2]).explanation


def test_sparklines() -> None:
    assert sparkline([0, 50, 100], 100) == "▁▅█"
    assert sparkline([None, 100], 100) == " █"
    assert sparkline([]) == ""
    history = History(length=3)
    for value in (1.0, 2.0, 3.0, 4.0):
        history.add("vm/rss", value)
    assert len(history.spark("vm/rss")) == 3

"""The metrics core without a server: counters parsed from libvirt's bulk stats, rates between two samples,
the round-robin history files (restart, laps, bounded size) and the threshold checks."""

from __future__ import annotations

import math
from pathlib import Path

from vmdeck.metrics.history import FILE_BYTES, TIERS, HistoryStore, file_name
from vmdeck.metrics.rates import FIELDS, sample_rates, vm_rates
from vmdeck.metrics.sample import HostFigures, Sample, vm_counters
from vmdeck.metrics.thresholds import PoolUsage, cpu_pinned, disk_pool_full, host_overcommitted, notices

STATS = {"state.state": 1, "vcpu.current": 2, "vcpu.maximum": 2, "vcpu.0.delay": 5_000_000, "vcpu.1.delay": 1_000_000,
         "balloon.maximum": 262144, "balloon.current": 262144, "balloon.rss": 100_000, "cpu.time": 10_000_000_000,
         "block.count": 1, "block.0.name": "vda", "block.0.path": "/pool/a.qcow2", "block.0.rd.bytes": 1000,
         "block.0.rd.reqs": 10, "block.0.wr.bytes": 2000, "block.0.wr.reqs": 20, "block.0.capacity": 1 << 30,
         "net.count": 1, "net.0.name": "vnet0", "net.0.rx.bytes": 500, "net.0.rx.pkts": 5, "net.0.tx.bytes": 700,
         "net.0.tx.pkts": 7}


def _host(vcpus: int = 2, pcpus: int = 2) -> HostFigures:
    return HostFigures("h", True, pcpus, None, vcpus, 0)


def test_counters_from_bulk_stats() -> None:
    vm = vm_counters("a", "p", STATS)
    assert vm.running and vm.vcpus == 2 and vm.maximum_memory_bytes == 256 << 20
    assert vm.run_delay_ns == 6_000_000 and vm.rss_bytes == 100_000 * 1024
    assert vm.blocks[0].device == "vda" and vm.blocks[0].write_requests == 20
    assert vm.nets[0].device == "vnet0" and vm.nets[0].transmit_packets == 7
    off = vm_counters("b", None, {"state.state": 5, "balloon.maximum": 1024})
    assert not off.running and off.cpu_time_ns is None and off.blocks == ()


def test_rates_between_two_samples_and_a_restart_gives_none() -> None:
    before = vm_counters("a", None, STATS)
    later = {**STATS, "cpu.time": 15_000_000_000, "block.0.rd.bytes": 11_000, "net.0.rx.bytes": 5500}
    rates = vm_rates(vm_counters("a", None, later), before, 5.0)
    assert rates.cpu_pct == 100.0  # 5 s of CPU in 5 s: one host CPU
    assert rates.disk_read_bps == 2000.0 and rates.disk_write_bps == 0.0 and rates.net_rx_bps == 1000.0
    restarted = vm_rates(vm_counters("a", None, {**STATS, "cpu.time": 1}), before, 5.0)
    assert restarted.cpu_pct is None and restarted.rss_bytes == 100_000 * 1024
    first = Sample(0.0, 0.0, _host(), (before,))
    vms, host = sample_rates(first, None)
    assert vms["a"].cpu_pct is None and host.rss_bytes == 100_000 * 1024


def test_history_keeps_points_across_reopening_merges_a_bucket_and_skips_old_laps(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    t0 = 1_800_000_000.0
    values = (50.0, 1e6, None, 0.0, 10.0, 1.0, 2.0)
    store.record("vm", "a", t0, values)
    store.record("vm", "a", t0 + 1, (150.0, *values[1:]))  # the same 10 s bucket: averaged
    store.close()
    reopened = HistoryStore(tmp_path)  # a server restart
    series = reopened.read("vm", "a", "1h", now=t0 + 5)
    assert series is not None and series.step_s == 10 and len(series.points) == 1
    point = series.points[0]
    assert point[0] == t0 and point[1] == 100.0 and point[1 + FIELDS.index("touched_bytes")] is None
    assert reopened.read("vm", "a", "1d", now=t0 + 5).points[0][1] == 100.0  # type: ignore[union-attr]
    # One hour later the 10 s slot is still there but outside the window; the 1-day tier still has it.
    assert reopened.read("vm", "a", "1h", now=t0 + 3700).points == []  # type: ignore[union-attr]
    assert len(reopened.read("vm", "a", "1d", now=t0 + 3700).points) == 1  # type: ignore[union-attr]
    # A lap later the slot is reused, the old point gone.
    reopened.record("vm", "a", t0 + TIERS[0].span_s, (1.0,) * len(FIELDS))
    assert reopened.read("vm", "a", "1h", now=t0 + TIERS[0].span_s)\
        .points == [[t0 + TIERS[0].span_s, *(1.0,) * len(FIELDS)]]  # type: ignore[union-attr]
    assert (tmp_path / "vm-a.hist").stat().st_size == FILE_BYTES == 269_296
    assert reopened.read("vm", "never", "1h") is None


def test_history_file_names_are_safe_and_gone_vms_are_pruned_after_30_days(tmp_path: Path) -> None:
    assert file_name("vm", "../etc/passwd") == "vm-..%2Fetc%2Fpasswd.hist"
    assert file_name("vm", "web-1") == "vm-web-1.hist"
    store = HistoryStore(tmp_path)
    store.record("vm", "gone", 1_800_000_000.0, (None,) * len(FIELDS))
    store.record("vm", "kept", 1_800_000_000.0, (None,) * len(FIELDS))
    assert store.prune({"kept"}) == []  # written just now
    assert store.prune({"kept"}, now=1e12) == ["vm-gone.hist"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vm-kept.hist"]


def test_thresholds() -> None:
    assert cpu_pinned([95.0, 99.0, 100.0], 1) and not cpu_pinned([95.0, 50.0, 100.0], 1)
    assert not cpu_pinned([100.0, 100.0], 1)  # too short to tell
    assert not cpu_pinned([100.0, 100.0, 100.0], 2)  # one of two vCPUs busy
    vm = vm_counters("a", "p", STATS)
    full = PoolUsage("vmdeck", "/pool", 100, 95)
    assert [d for d, _p in disk_pool_full(vm, [full])] == ["vda"]
    assert disk_pool_full(vm, [PoolUsage("vmdeck", "/pool", 100, 50)]) == []
    assert host_overcommitted(_host(vcpus=9, pcpus=2), 4.0) and not host_overcommitted(_host(vcpus=8, pcpus=2), 4.0)
    found = notices([vm], {"a": [185.0, 200.0, 190.0]}, [full], _host(vcpus=9), 4.0)
    assert [n.kind for n in found] == ["cpu_pinned", "disk_pool_full", "host_vcpu_ratio"]
    assert found[0].project == "p" and "all 2 vCPU(s) at 100 %" in found[0].message
    assert not math.isnan(full.ratio)

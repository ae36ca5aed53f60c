"""The host view's fast refresh reuses what cannot change between snapshots and reads only the vCPU
threads in full; it must still agree with the full view about the process, its threads and its time."""

from __future__ import annotations

from vmdeck.host.connection import Host
from vmdeck.hostview.collect import Collector


def test_fast_refresh_agrees_with_the_full_view(shared_vm: str, host: Host) -> None:
    full = Collector(host).snapshot([shared_vm]).vm(shared_vm)
    collector = Collector(host, detailed=False, page_cache=False)
    first = collector.snapshot([shared_vm]).vm(shared_vm)
    second = collector.snapshot([shared_vm]).vm(shared_vm)  # from the kept XML, record and thread names
    assert collector._static[shared_vm].pid == full.process.pid  # type: ignore[union-attr]
    for fast in (first, second):
        assert not fast.stale and fast.error is None
        assert fast.process is not None and fast.process.pid == full.process.pid  # type: ignore[union-attr]
        assert [t.tid for t in fast.process.vcpu_threads] == [t.tid for t in full.process.vcpu_threads]  # type: ignore[union-attr]
        assert fast.sched is not None and [v.tid for v in fast.sched.vcpus] == [v.tid for v in full.sched.vcpus]  # type: ignore[union-attr]
        # The emulator threads' run time only grows: the fast sum of their schedstat is at least the earlier full one.
        assert fast.sched.emulator_run_time_ns >= full.sched.emulator_run_time_ns > 0  # type: ignore[union-attr]
        assert fast.memory is not None and fast.memory.rss_kib > 0 and fast.memory.pss_kib is None
        assert fast.memory.configured_kib == full.memory.configured_kib  # type: ignore[union-attr]
    # Rates need two readings of the same process: the second fast snapshot has them.
    assert all(v.cpu_share_pct is not None for v in second.sched.vcpus)  # type: ignore[union-attr]
    assert second.sched.emulator_run_time_ns >= first.sched.emulator_run_time_ns  # type: ignore[union-attr]

"""How the host scheduler treats a VM's vCPU threads (core layer).

A vCPU is an ordinary host thread: the kernel counts its CPU time (user =
running guest code or TCG-translated code, system = in the kernel on its
behalf), the time it sat runnable on a run queue waiting for a host CPU
(schedstat's run delay: the "steal time" the guest will feel), its context
switches, the CPU it last ran on and the CPUs it may run on. Rates (share of
the last interval) come from two readings; see `rates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmdeck.hostview.procfs import CLK_TCK, parse_schedstat, parse_stat, parse_status, read_text
from vmdeck.hostview.rates import delta_per_s, share_pct

__all__ = ["ThreadSched", "VcpuSched", "Overcommit", "SchedView", "read_thread_sched", "overcommit",
           "apply_sched_rates"]

_NS_PER_TICK = 1_000_000_000 // CLK_TCK


@dataclass(frozen=True)
class ThreadSched:
    """One reading of one thread's scheduler counters."""

    user_time_ns: int
    system_time_ns: int
    run_time_ns: int  # schedstat: ns spent on a CPU (finer than user+system, which count 10 ms ticks)
    run_delay_ns: int  # schedstat: ns spent runnable but waiting for a CPU
    timeslices: int
    voluntary_switches: int  # the thread gave up the CPU (e.g. the vCPU halted, waiting for an event)
    involuntary_switches: int  # the scheduler took the CPU away (another thread needed it)
    last_cpu: int
    cpus_allowed: str  # Cpus_allowed_list, e.g. "0-1"
    state: str  # R running/runnable, S sleeping ...


def parse_thread_sched(stat_text: str, status_text: str, schedstat_text: str) -> ThreadSched:
    stat, status = parse_stat(stat_text), parse_status(status_text)
    run_ns, delay_ns, slices = parse_schedstat(schedstat_text)
    return ThreadSched(
        user_time_ns=int(stat["utime_ticks"]) * _NS_PER_TICK,
        system_time_ns=int(stat["stime_ticks"]) * _NS_PER_TICK,
        run_time_ns=run_ns, run_delay_ns=delay_ns, timeslices=slices,
        voluntary_switches=int(status.get("voluntary_ctxt_switches", "0")),
        involuntary_switches=int(status.get("nonvoluntary_ctxt_switches", "0")),
        last_cpu=int(stat["processor"]), cpus_allowed=status.get("Cpus_allowed_list", ""),
        state=str(stat["state"]),
    )


def read_thread_sched(pid: int, tid: int) -> ThreadSched | None:
    base = Path(f"/proc/{pid}/task/{tid}")
    texts = [read_text(base / name) for name in ("stat", "status", "schedstat")]
    if any(t is None for t in texts):
        return None
    return parse_thread_sched(*texts)  # type: ignore[arg-type]


@dataclass
class VcpuSched:
    vcpu: int
    tid: int
    user_time_ns: int
    system_time_ns: int
    run_time_ns: int
    run_delay_ns: int
    voluntary_switches: int
    involuntary_switches: int
    last_cpu: int
    cpus_allowed: str
    state: str
    # Filled from the previous reading (None on the first one):
    cpu_share_pct: float | None = None  # % of the interval this vCPU thread ran on a host CPU
    run_delay_pct: float | None = None  # % of the interval it waited for one
    involuntary_switches_per_s: float | None = None


@dataclass(frozen=True)
class Overcommit:
    host_pcpus: int
    running_vms: int
    running_vcpus: int
    ratio: float  # vCPUs of all running VMs per host CPU

    @property
    def explanation(self) -> str:
        if self.ratio <= 1:
            return "every vCPU can have a host CPU of its own"
        return (f"{self.running_vcpus} vCPUs share {self.host_pcpus} host CPUs: when they are all busy, "
                "vCPUs wait on run queues (see run delay)")


@dataclass
class SchedView:
    vcpus: list[VcpuSched]
    emulator_cpus_allowed: str  # the main loop's affinity: `vmdeck pin --emulator` changes it
    emulator_run_time_ns: int  # every non-vCPU thread together (device emulation, I/O, VNC ...)
    overcommit: Overcommit
    emulator_cpu_share_pct: float | None = None
    interval_s: float | None = None


def overcommit(host_pcpus: int, running_vcpus: list[int]) -> Overcommit:
    """The host's CPUs against the vCPUs of every running VM (`running_vcpus`: one count per VM)."""
    total = sum(running_vcpus)
    return Overcommit(host_pcpus=host_pcpus, running_vms=len(running_vcpus), running_vcpus=total,
                      ratio=round(total / host_pcpus, 2) if host_pcpus else 0.0)


def vcpu_sched(vcpu: int, tid: int, reading: ThreadSched) -> VcpuSched:
    return VcpuSched(
        vcpu=vcpu, tid=tid, user_time_ns=reading.user_time_ns, system_time_ns=reading.system_time_ns,
        run_time_ns=reading.run_time_ns, run_delay_ns=reading.run_delay_ns,
        voluntary_switches=reading.voluntary_switches, involuntary_switches=reading.involuntary_switches,
        last_cpu=reading.last_cpu, cpus_allowed=reading.cpus_allowed, state=reading.state,
    )


def apply_sched_rates(current: SchedView, previous: SchedView | None, interval_s: float) -> None:
    """Fill the per-interval shares of `current` from `previous` (same VM, taken `interval_s` earlier)."""
    if previous is None or interval_s <= 0:
        return
    current.interval_s = round(interval_s, 3)
    before = {v.tid: v for v in previous.vcpus}
    for v in current.vcpus:
        old = before.get(v.tid)
        if old is None:
            continue  # a new thread (vCPU hot-plugged or QEMU restarted): no rate yet
        v.cpu_share_pct = share_pct(v.run_time_ns - old.run_time_ns, interval_s)
        v.run_delay_pct = share_pct(v.run_delay_ns - old.run_delay_ns, interval_s)
        v.involuntary_switches_per_s = delta_per_s(v.involuntary_switches, old.involuntary_switches, interval_s)
    current.emulator_cpu_share_pct = share_pct(current.emulator_run_time_ns - previous.emulator_run_time_ns,
                                               interval_s)

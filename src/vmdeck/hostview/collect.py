"""One host-view snapshot of one or many running VMs, and rates from two snapshots (core layer).

Cost model, because a view of 50 VMs must refresh quickly: libvirt is asked
ONCE per snapshot (virConnectGetAllDomainStats with NOWAIT, so a VM stuck in
a libvirt job answers with what is known instead of holding the call), then
each VM's /proc files and live XML are read by a worker thread under one
shared deadline. A VM whose worker misses the deadline (a hung QEMU can
block reads of its /proc/PID/smaps on the mmap lock) is marked stale and
keeps its previous readings, so one slow VM never stalls the view.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from vmdeck.domxml.parse import DomainView, parse_domain
from vmdeck.errors import HostError, StateError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Domain
from vmdeck.hostview.cpumode import (
    CpuModeView,
    HostCpuFacts,
    apply_exit_rates,
    cpu_mode,
    host_cpu_facts,
    kvm_stats_from_libvirt,
    parse_query_stats,
)
from vmdeck.hostview.memory import HostMemoryFeatures, MemoryView, host_memory_features, read_memory
from vmdeck.hostview.process import (
    QEMU_RUN_DIR,
    LibvirtRecord,
    ProcessInfo,
    read_libvirt_record,
    read_process,
)
from vmdeck.hostview.procfs import boot_time, parse_schedstat, read_text
from vmdeck.hostview.rates import delta_per_s
from vmdeck.hostview.sched import Overcommit, SchedView, apply_sched_rates, overcommit, read_thread_sched, vcpu_sched
from vmdeck.hostview.storage import DiskHost, read_disks
from vmdeck.hostview.tpm import TpmHost, read_tpm
from vmdeck.vm.state import ACTIVE, state_name

__all__ = ["VmHostView", "HostSummary", "Snapshot", "Collector", "STATS_KINDS", "FAST_STATS_KINDS"]

STATS_KINDS = ("state", "vcpu", "balloon", "block")
# The fast refresh shows no guest balloon statistics and no disk counters: both are a QEMU monitor
# round trip per VM inside libvirt's bulk call (most of its time with 50 busy QEMUs on 2 cores).
FAST_STATS_KINDS = ("state", "vcpu")
# In the fast refresh, a VM's domain XML and libvirt's record of its process are re-read at most this often
# (and whenever its QEMU process changes): device changes show within this many seconds.
STATIC_TTL_S = 10.0


@dataclass
class _Static:
    """What the fast refresh keeps of one VM between snapshots (valid for one QEMU process)."""

    pid: int
    record: LibvirtRecord
    xml: str
    view: DomainView
    read_at: float
    process: ProcessInfo | None = None


@dataclass
class VmHostView:
    name: str
    state: str
    vcpus: int
    domain_type: str
    stale: bool = False  # True: this VM did not answer in time; sections are from the previous snapshot
    error: str | None = None  # the VM could not be read at all (e.g. its QEMU vanished mid-read)
    collected_at_epoch_s: float = 0.0
    process: ProcessInfo | None = None
    sched: SchedView | None = None
    memory: MemoryView | None = None
    disks: list[DiskHost] = field(default_factory=list)
    cpu_mode: CpuModeView | None = None
    tpm: TpmHost | None = None  # the emulated TPM's swtpm process and state (hostview.tpm)
    libvirt_cpu_time_ns: dict[int, int] = field(default_factory=dict)  # vcpu.N.time as libvirt reports it
    _monotonic: float = field(default=0.0, repr=False)


@dataclass(frozen=True)
class HostSummary:
    hostname: str
    pcpus: int
    overcommit: Overcommit
    memory: HostMemoryFeatures
    cpu: HostCpuFacts


@dataclass
class Snapshot:
    taken_at_epoch_s: float
    collect_ms: float
    host: HostSummary | None  # None: a tenant's view through a server (the host's facts are its administrator's)
    vms: list[VmHostView]

    def vm(self, name: str) -> VmHostView:
        return next(v for v in self.vms if v.name == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field name carries its unit (_kib, _ns, _bytes, _pct, _per_s)."""
        def plain(value: Any) -> Any:
            if hasattr(value, "__dataclass_fields__"):
                data = {k: plain(getattr(value, k)) for k in value.__dataclass_fields__ if not k.startswith("_")}
                if isinstance(value, Overcommit):
                    data["explanation"] = value.explanation
                return data
            if isinstance(value, dict):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value
        data: dict[str, Any] = plain(self)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        """The snapshot `to_dict` gave (through JSON: a server's host view, read by `vmdeck --remote R
        hostview`), so the same renderer draws it."""
        made: Snapshot = _from_plain(cls, data)
        return made


def _from_plain(kind: Any, value: Any) -> Any:
    """`value` (plain JSON) as an instance of the annotated type `kind`: dataclasses field by field (fields
    a newer server adds are left out), Optional, lists, tuples and dicts (JSON's string keys converted)."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return _from_plain(next(a for a in typing.get_args(kind) if a is not type(None)), value)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: _from_plain(hints[f.name], value[f.name]) for f in dataclasses.fields(kind)
                       if f.init and f.name in value})
    if origin in (list, tuple):
        items = [_from_plain(typing.get_args(kind)[0], item) for item in value]
        return items if origin is list else tuple(items)
    if origin is dict:
        key_type, value_type = typing.get_args(kind)
        return {key_type(k): _from_plain(value_type, v) for k, v in value.items()}
    return value


class Collector:
    """Takes snapshots of a host's VMs; keeps the previous one to turn counters into rates."""

    def __init__(self, host: Host, *, timeout_s: float = 2.0, detailed: bool = True, page_cache: bool = True):
        if not host.is_local:
            raise HostError(f"the host view reads /proc and /sys of the VM's host: it needs a local connection, "
                            f"not {host.uri}")
        self.host = host
        self.timeout_s = timeout_s
        self.detailed = detailed
        self.page_cache = page_cache
        self.previous: Snapshot | None = None
        self._static: dict[str, _Static] = {}
        self._hostname = host.conn.hostname()
        self._pcpus = host.conn.info()[2]
        self._cpu = host_cpu_facts()
        self._btime = boot_time()

    # -- libvirt: one call -------------------------------------------------------------------------------

    @property
    def fast(self) -> bool:
        return not self.detailed

    def _stats(self, names: list[str] | None) -> list[tuple[Domain, dict[str, Any]]]:
        kinds = FAST_STATS_KINDS if self.fast else STATS_KINDS
        if names is None:
            return self.host.conn.domain_stats(kinds, active_only=True)
        return self.host.conn.domain_stats(kinds, domains=[self._running(name) for name in names])

    def _running(self, name: str) -> Domain:
        dom = self.host.lookup(name)
        state, detail = dom.state()
        if state not in ACTIVE:
            raise StateError(name, f"{state} ({detail})" if detail else state, "running",
                             "show the host view (its QEMU process) of")
        return dom

    def _running_vcpus(self, records: list[tuple[Domain, dict[str, Any]]], all_vms: bool) -> list[int]:
        counts = {dom.uuid(): int(stats.get("vcpu.current", 0)) for dom, stats in records}
        if not all_vms:
            # The other running VMs count for overcommit too: one cheap info() each, no monitor call.
            for dom in self.host.conn.domains(active=True):
                if dom.uuid() not in counts:
                    counts[dom.uuid()] = dom.info()[3]
        return list(counts.values())

    # -- per VM: /proc and the live XML, in a worker -----------------------------------------------------

    def _static_facts(self, dom: Domain) -> tuple[str, DomainView, LibvirtRecord | None, _Static | None]:
        """The VM's live XML and libvirt's record of its process; the fast refresh reuses recent ones."""
        name = dom.name
        cached = self._static.get(name) if self.fast else None
        if cached is not None:
            pid_text = read_text(QEMU_RUN_DIR / f"{name}.pid")
            if (pid_text or "").strip() == str(cached.pid) and time.monotonic() - cached.read_at < STATIC_TTL_S:
                return cached.xml, cached.view, cached.record, cached
        xml = dom.xml()
        view = parse_domain(xml)
        record = read_libvirt_record(name)
        entry = None
        if self.fast and record is not None and record.pid is not None:
            entry = _Static(record.pid, record, xml, view, time.monotonic())
            self._static[name] = entry
        return xml, view, record, entry

    def _read_vm(self, dom: Domain, stats: dict[str, Any]) -> VmHostView:
        name = dom.name
        xml, view_xml, record, static = self._static_facts(dom)
        vcpus = int(stats.get("vcpu.current", view_xml.vcpus))
        view = VmHostView(name=name, state=state_name(int(stats.get("state.state", 0))), vcpus=vcpus,
                          domain_type=view_xml.domain_type, collected_at_epoch_s=time.time(),
                          _monotonic=time.monotonic())
        view.libvirt_cpu_time_ns = {i: int(stats[f"vcpu.{i}.time"]) for i in range(vcpus) if f"vcpu.{i}.time" in stats}
        if record is None or record.pid is None:
            view.error = f"libvirt has no QEMU process on record for VM {name!r} (not running on this host?)"
            return view
        process = read_process(record.pid, view_xml.domain_type, vcpus, record, btime=self._btime,
                               previous=static.process if static is not None else None)
        if static is not None:
            static.process = process
        if process is None:
            view.error = f"the QEMU process (pid {record.pid}) of VM {name!r} is gone: it was killed or crashed"
            return view
        view.process = process
        view.sched = self._sched(process, vcpus, record.vcpu_tids)
        view.memory = read_memory(process.pid, int(stats.get("balloon.maximum", view_xml.memory_mib * 1024)),
                                  int(stats.get("balloon.current", view_xml.current_memory_mib * 1024)),
                                  {k[8:]: int(v) for k, v in stats.items() if k.startswith("balloon.")},
                                  detailed=self.detailed)
        view.disks = read_disks(xml, stats, page_cache=self.page_cache)
        view.tpm = read_tpm(xml, dom.uuid())
        view.cpu_mode = cpu_mode(self._cpu, view_xml.domain_type, view_xml.accel_reason, self._kvm_stats(dom, stats)
                                 if view_xml.domain_type == "kvm" else None)
        return view

    def _sched(self, process: ProcessInfo, vcpus: int, vcpu_tids: dict[int, int]) -> SchedView:
        by_tid = {tid: n for n, tid in vcpu_tids.items()} or {t.tid: t.vcpu for t in process.vcpu_threads if t.vcpu is not None}
        if self.fast:
            return self._sched_fast(process, vcpus, by_tid)
        entries, emulator_ns, emulator_cpus = [], 0, ""
        for thread in process.threads:
            reading = read_thread_sched(process.pid, thread.tid)
            if reading is None:
                continue
            if thread.tid in by_tid and by_tid[thread.tid] is not None:
                entries.append(vcpu_sched(int(by_tid[thread.tid]), thread.tid, reading))
            else:
                emulator_ns += reading.run_time_ns
                if thread.tid == process.pid:
                    emulator_cpus = reading.cpus_allowed
        return SchedView(vcpus=sorted(entries, key=lambda v: v.vcpu), emulator_cpus_allowed=emulator_cpus,
                         emulator_run_time_ns=emulator_ns, overcommit=overcommit(self._pcpus, [vcpus]))

    def _sched_fast(self, process: ProcessInfo, vcpus: int, by_tid: dict[int, int]) -> SchedView:
        # stat, status and schedstat for the vCPU threads only; the other threads' run time comes from
        # their schedstat alone (one small file each instead of three), their affinity from the main thread.
        entries = []
        emulator_ns = 0
        for thread in process.threads:
            vcpu = by_tid.get(thread.tid)
            if vcpu is not None:
                reading = read_thread_sched(process.pid, thread.tid)
                if reading is not None:
                    entries.append(vcpu_sched(vcpu, thread.tid, reading))
                continue
            text = read_text(f"/proc/{process.pid}/task/{thread.tid}/schedstat")
            if text is not None:
                emulator_ns += parse_schedstat(text)[0]
        main = read_thread_sched(process.pid, process.pid)
        return SchedView(vcpus=sorted(entries, key=lambda v: v.vcpu),
                         emulator_cpus_allowed=main.cpus_allowed if main else "",
                         emulator_run_time_ns=emulator_ns, overcommit=overcommit(self._pcpus, [vcpus]))

    def _kvm_stats(self, dom: Domain, stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
        # libvirt >= 8.9 already put KVM's per-vCPU stats into the bulk reply; older ones need QMP.
        from_bulk = kvm_stats_from_libvirt(stats)
        if from_bulk:
            return from_bulk
        request = {"execute": "query-stats", "arguments": {"target": "vcpu", "providers": [{"provider": "kvm"}]}}
        try:
            return parse_query_stats(dom.qemu_monitor(json.dumps(request)))
        except VmdeckError:
            return {}

    # -- the snapshot ------------------------------------------------------------------------------------

    def snapshot(self, names: list[str] | None = None) -> Snapshot:
        """Read `names` (None: every running VM). Raises NotFound/StateError for a named VM that is
        missing or not running; a VM that dies or hangs during the read is reported, not raised."""
        started = time.monotonic()
        records = self._stats(names)
        running_vcpus = self._running_vcpus(records, names is None)
        results: dict[str, VmHostView | BaseException] = {}

        def work(dom: Domain, stats: dict[str, Any]) -> None:
            try:
                results[dom.name] = self._read_vm(dom, stats)
            except BaseException as exc:  # reported per VM below; a worker must never die silently
                results[dom.name] = exc

        workers = []
        for dom, stats in records:
            # Daemon threads: a worker stuck in a kernel read must not keep the command from exiting.
            thread = threading.Thread(target=work, args=(dom, stats), daemon=True)
            thread.start()
            workers.append((dom, stats, thread))
        deadline = started + self.timeout_s
        previous = {v.name: v for v in self.previous.vms} if self.previous else {}
        vms = []
        for dom, stats, thread in workers:
            thread.join(max(0.0, deadline - time.monotonic()))
            name = dom.name
            result = results.get(name)
            if result is None:
                vms.append(self._stale(name, stats, previous.get(name)))
            elif isinstance(result, BaseException):
                vms.append(self._failed(name, stats, result))
            else:
                _apply_rates(result, previous.get(name))
                vms.append(result)
        oc = overcommit(self._pcpus, running_vcpus)
        for vm in vms:
            if vm.sched is not None and not vm.stale:
                vm.sched.overcommit = oc
        snap = Snapshot(taken_at_epoch_s=time.time(), collect_ms=round((time.monotonic() - started) * 1000, 1),
                        host=HostSummary(self._hostname, self._pcpus, oc, host_memory_features(), self._cpu),
                        vms=sorted(vms, key=lambda v: v.name))
        self.previous = snap
        return snap

    def _stale(self, name: str, stats: dict[str, Any], before: VmHostView | None) -> VmHostView:
        reason = f"no answer within {self.timeout_s:g} s"
        if before is not None:
            kept = VmHostView(**{**before.__dict__, "stale": True, "error": f"{reason}: showing the previous reading"})
            return kept
        return VmHostView(name=name, state=state_name(int(stats.get("state.state", 0))),
                          vcpus=int(stats.get("vcpu.current", 0)), domain_type="?", stale=True, error=reason,
                          collected_at_epoch_s=time.time())

    def _failed(self, name: str, stats: dict[str, Any], exc: BaseException) -> VmHostView:
        if isinstance(exc, VmdeckError) and exc.reason is not None:  # libvirt's, translated
            text = exc.libvirt_text
            message = f"VM {name!r} stopped while it was being read: {text}"
        else:
            message = f"reading VM {name!r} failed: {type(exc).__name__}: {exc}"
        return VmHostView(name=name, state=state_name(int(stats.get("state.state", 0))),
                          vcpus=int(stats.get("vcpu.current", 0)), domain_type="?", error=message,
                          collected_at_epoch_s=time.time())


def _apply_rates(current: VmHostView, previous: VmHostView | None) -> None:
    """Per-interval values of `current` from the same VM's previous reading (same QEMU process only)."""
    if previous is None or previous.process is None or current.process is None:
        return
    if previous.process.pid != current.process.pid:
        return  # the VM was restarted: counters started again from zero
    interval = current._monotonic - previous._monotonic
    if interval <= 0:
        return
    if current.sched and previous.sched:
        apply_sched_rates(current.sched, previous.sched, interval)
    if current.memory and previous.memory:
        current.memory.rss_change_kib_per_s = round((current.memory.rss_kib - previous.memory.rss_kib) / interval, 1)
    before = {d.target: d for d in previous.disks}
    for disk in current.disks:
        old = before.get(disk.target)
        if old is not None:
            disk.read_bytes_per_s = delta_per_s(disk.read_bytes, old.read_bytes, interval)
            disk.write_bytes_per_s = delta_per_s(disk.write_bytes, old.write_bytes, interval)
            disk.read_reqs_per_s = delta_per_s(disk.read_reqs, old.read_reqs, interval)
            disk.write_reqs_per_s = delta_per_s(disk.write_reqs, old.write_reqs, interval)
    if current.cpu_mode and previous.cpu_mode:
        apply_exit_rates(current.cpu_mode, previous.cpu_mode, interval)

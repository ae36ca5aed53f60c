"""The QEMU process behind a VM and its threads, each named for what it does (core layer).

A running VM is one QEMU process. QEMU names its threads when libvirt starts
it with `-name ...,debug-threads=on` ("CPU 0/TCG", "IO mon_iothread",
"vnc_worker" ...); this module classifies those names and cross-checks the
vCPU threads against libvirt's own vCPU-to-thread map (the one libvirt uses
when it pins a vCPU or moves it into the vcpuN cgroup), which libvirt keeps in
its status file /run/libvirt/qemu/NAME.xml.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from vmdeck.domxml.status import status_pids
from vmdeck.hostview.procfs import CLK_TCK, boot_time, parse_stat, parse_status, read_text

__all__ = [
    "ThreadInfo", "ProcessInfo", "LibvirtRecord", "classify_thread", "read_libvirt_record",
    "accelerator_from_cmdline", "read_process", "check_thread_map", "QEMU_RUN_DIR", "qemu_cmdline",
    "cmdline_options",
]

QEMU_RUN_DIR = Path("/run/libvirt/qemu")

_VCPU = re.compile(r"^CPU (\d+)/(\w+)$")


@dataclass(frozen=True)
class ThreadInfo:
    tid: int
    name: str  # the kernel's comm, as QEMU set it (15 characters at most)
    role: str  # vcpu | main | monitor-io | iothread | vnc | spice | worker | rcu | migration | helper | other
    label: str  # what a person should read
    vcpu: int | None = None  # the vCPU number QEMU's thread name gives
    libvirt_vcpu: int | None = None  # the vCPU number libvirt's map gives this thread


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    user: str
    binary: str
    started_at_epoch_s: float
    started_at: str  # ISO 8601, local time
    uptime_s: float
    accelerator: str  # "KVM" | "TCG"
    accelerator_evidence: str  # how we know: the domain type and QEMU's own command line
    threads: list[ThreadInfo] = field(default_factory=list)
    thread_map_source: str = ""
    thread_map_ok: bool = True
    thread_map_problems: list[str] = field(default_factory=list)

    @property
    def vcpu_threads(self) -> list[ThreadInfo]:
        return sorted((t for t in self.threads if t.role == "vcpu" and t.vcpu is not None), key=lambda t: t.vcpu or 0)


def classify_thread(name: str, tid: int, pid: int) -> tuple[str, str, int | None]:
    """(role, label, vcpu number) for one QEMU thread from its comm name."""
    match = _VCPU.match(name)
    if match:
        accel = match.group(2)
        return "vcpu", f"vCPU {match.group(1)} ({accel}: runs guest code)", int(match.group(1))
    if name.startswith("ALL CPUs/"):
        return "vcpu", "all vCPUs (single-threaded TCG: one host thread for every vCPU)", None
    if tid == pid:
        return "main", "main loop (event loop: device emulation, timers, monitor)", None
    if name == "IO mon_iothread":
        return "monitor-io", "monitor I/O thread (QMP traffic from libvirt)", None
    if name.startswith("IO "):
        return "iothread", f"I/O thread {name[3:]} (dedicated to disk/network queues)", None
    if name == "vnc_worker":
        return "vnc", "VNC encoder (compresses screen updates for viewers)", None
    if name.startswith("SPICE"):
        return "spice", "SPICE display worker", None
    if name == "worker":
        return "worker", "worker pool (blocking I/O done off the main loop)", None
    if name == "call_rcu":
        return "rcu", "RCU reclaim (frees memory no reader still uses)", None
    if name.startswith(("live_migration", "multifd", "mig/")):
        return "migration", f"migration ({name})", None
    if name.startswith("qemu-system"):
        # Threads started before QEMU turns on thread naming keep the process name; in QEMU 7.x
        # that is the RCU thread, created by a constructor before the command line is parsed.
        return "helper", "unnamed helper (started before thread naming; usually RCU reclaim)", None
    return "other", name, None


@dataclass(frozen=True)
class LibvirtRecord:
    """What libvirt recorded about a running VM's process: its pid and vCPU threads."""

    pid: int | None
    vcpu_tids: dict[int, int]  # vCPU number -> host thread id
    source: str


def parse_status_xml(text: str) -> LibvirtRecord | None:
    """libvirt's status XML (<domstatus pid=...><vcpus><vcpu id= pid=/>) -> LibvirtRecord; None if unreadable."""
    pids = status_pids(text)
    return LibvirtRecord(pids[0], pids[1], "libvirt status file") if pids is not None else None


def read_libvirt_record(name: str, run_dir: Path = QEMU_RUN_DIR) -> LibvirtRecord | None:
    """The pid and vCPU thread map libvirt keeps for a running VM on this host (None: not running here)."""
    text = read_text(run_dir / f"{name}.xml")
    if text:
        record = parse_status_xml(text)
        if record is not None and record.pid:
            return record
    pid_text = read_text(run_dir / f"{name}.pid")
    if pid_text and pid_text.strip().isdigit():
        return LibvirtRecord(int(pid_text.strip()), {}, "libvirt pid file")
    return None


def qemu_cmdline(pid: int) -> list[str]:
    """The running QEMU's command line, as /proc gives it (one argument per item; [] when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def cmdline_options(argv: list[str]) -> list[str]:
    """QEMU's argv grouped one option per line: "-name guest=x,debug-threads=on", the binary first."""
    lines: list[str] = []
    for arg in argv:
        if arg.startswith("-") or not lines:
            lines.append(arg)
        else:
            lines[-1] += f" {arg}"
    return lines


def accelerator_from_cmdline(argv: list[str]) -> str | None:
    """"KVM"/"TCG" from QEMU's own command line (-accel X, -machine ...,accel=X, -enable-kvm)."""
    for i, arg in enumerate(argv):
        if arg == "-enable-kvm":
            return "KVM"
        if arg == "-accel" and i + 1 < len(argv):
            return argv[i + 1].split(",")[0].upper()
        if arg == "-machine" and i + 1 < len(argv):
            for part in argv[i + 1].split(","):
                if part.startswith("accel="):
                    return part[6:].split(":")[0].upper()
    return None


def check_thread_map(threads: list[ThreadInfo], vcpu_tids: dict[int, int], vcpus: int) -> list[str]:
    """Disagreements between QEMU's thread names, libvirt's map and the VM's vCPU count ([] = all agree)."""
    problems = []
    named = {t.vcpu: t.tid for t in threads if t.role == "vcpu" and t.vcpu is not None}
    if len(named) != vcpus:
        problems.append(f"{len(named)} threads are named as vCPUs but the VM has {vcpus} vCPUs")
    if vcpu_tids:
        if len(vcpu_tids) != vcpus:
            problems.append(f"libvirt maps {len(vcpu_tids)} vCPU threads but the VM has {vcpus} vCPUs")
        for vcpu, tid in sorted(vcpu_tids.items()):
            if named.get(vcpu) != tid:
                problems.append(f"libvirt says vCPU {vcpu} is thread {tid}, QEMU's names say {named.get(vcpu)}")
    return problems


def _user(status: dict[str, str]) -> str:
    uid = int(status.get("Uid", "0").split()[0])
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def read_process(pid: int, domain_type: str, vcpus: int, record: LibvirtRecord | None,
                 *, btime: int | None = None, previous: ProcessInfo | None = None) -> ProcessInfo | None:
    """Everything about QEMU process `pid`, or None when it is gone.

    `previous`, an earlier reading of the same process, saves the reads that cannot have changed
    (binary, owner, command line, names of threads already seen): a refresh of many VMs reads less.
    """
    if previous is not None and previous.pid == pid:
        return _reread_process(previous, vcpus, record)
    proc = Path(f"/proc/{pid}")
    stat_text, status_text = read_text(proc / "stat"), read_text(proc / "status")
    if stat_text is None or status_text is None:
        return None
    stat, status = parse_stat(stat_text), parse_status(status_text)
    try:
        binary = os.readlink(proc / "exe")
    except OSError:
        binary = "?"
    argv = [a for a in (read_text(proc / "cmdline") or "").split("\0") if a]
    started = (btime if btime is not None else boot_time()) + int(stat["starttime_ticks"]) / CLK_TCK
    from_cmdline = accelerator_from_cmdline(argv)
    accel = "KVM" if domain_type == "kvm" else "TCG"
    evidence = f"domain type '{domain_type}'" + (f", QEMU runs with -accel {from_cmdline.lower()}" if from_cmdline else "")
    vcpu_tids = record.vcpu_tids if record else {}
    by_tid = {tid: vcpu for vcpu, tid in vcpu_tids.items()}
    threads = []
    try:
        tids = sorted(int(t) for t in os.listdir(proc / "task"))
    except OSError:
        return None
    for tid in tids:
        comm = (read_text(proc / "task" / str(tid) / "comm") or "").strip()
        if not comm:
            continue  # the thread exited between listdir and read
        role, label, vcpu = classify_thread(comm, tid, pid)
        threads.append(ThreadInfo(tid=tid, name=comm, role=role, label=label, vcpu=vcpu,
                                  libvirt_vcpu=by_tid.get(tid)))
    problems = check_thread_map(threads, vcpu_tids, vcpus)
    return ProcessInfo(
        pid=pid, user=_user(status), binary=binary, started_at_epoch_s=started,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        uptime_s=round(time.time() - started, 1), accelerator=accel, accelerator_evidence=evidence,
        threads=threads, thread_map_source=record.source if record and vcpu_tids else "QEMU thread names only",
        thread_map_ok=not problems, thread_map_problems=problems,
    )


def _reread_process(previous: ProcessInfo, vcpus: int, record: LibvirtRecord | None) -> ProcessInfo | None:
    proc = Path(f"/proc/{previous.pid}")
    try:
        tids = sorted(int(t) for t in os.listdir(proc / "task"))
    except OSError:
        return None
    known = {t.tid: t for t in previous.threads}
    vcpu_tids = record.vcpu_tids if record else {}
    by_tid = {tid: vcpu for vcpu, tid in vcpu_tids.items()}
    threads = []
    for tid in tids:
        thread = known.get(tid)
        if thread is None:  # a thread started since: read its name
            comm = (read_text(proc / "task" / str(tid) / "comm") or "").strip()
            if not comm:
                continue
            role, label, vcpu = classify_thread(comm, tid, previous.pid)
            thread = ThreadInfo(tid=tid, name=comm, role=role, label=label, vcpu=vcpu, libvirt_vcpu=by_tid.get(tid))
        threads.append(thread)
    problems = check_thread_map(threads, vcpu_tids, vcpus)
    return dataclasses.replace(previous, threads=threads, uptime_s=round(time.time() - previous.started_at_epoch_s, 1),
                               thread_map_ok=not problems, thread_map_problems=problems)

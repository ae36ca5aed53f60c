"""The Learn tour's experiments: each acts on one running VM, measures the host view before and after,
and undoes what it did in a `finally` (core layer).

Why these measurements: each is the smallest one that shows the chapter's point on any host, under KVM
or TCG, on a loaded machine too — a pinned thread's CPU in /proc, run delay of two vCPU threads sharing
one pCPU, QEMU's RSS before and after the guest touches memory, an image file's allocated blocks before
and after the guest writes, a CD drive's size in the guest's /sys. No step writes to a disk the learner
owns: the storage step writes to a scratch disk it hot-plugs and deletes.

What a step changes on the VM (a pinning, the balloon, a scratch disk, a CD) goes through the `Acts` its
caller gives (vmdeck.usecases.learn hands the use cases: each change is then checked, charged and audited
exactly as the same change through `vmdeck pin|balloon|disk|cdrom` or the API). The measurements and the
guest commands that drive the load are the step's own.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmdeck.errors import StateError
from vmdeck.host.connection import Host
from vmdeck.hostview.collect import Collector, VmHostView
from vmdeck.hostview.memory import MemoryView
from vmdeck.hostview.process import qemu_cmdline
from vmdeck.hostview.procfs import parse_stat, read_text
from vmdeck.hostview.sched import read_thread_sched
from vmdeck.hostview.storage import page_cache_bytes
from vmdeck.learn.steps import StepResult, step
from vmdeck.paths import iso_dir
from vmdeck.storage.iso import make_iso
from vmdeck.vm.agent import ExecResult, guest_exec
from vmdeck.vm.devices import DeviceChange
from vmdeck.vm.state import ACTIVE_STATES, current_state

__all__ = ["Acts", "run_step", "LEARN_ISO"]

# Where the busy loops publish their pids in the guest (tmpfs on every Linux guest).
_BUSY_PIDS = "/run/vmdeck-learn-busy"
# The CD step's disc: made once in the ISO library, a file any learner may read.
LEARN_ISO = "vmdeck-learn.iso"
_LEARN_TEXT = "Hello from the host: this file is on an ISO image in vmdeck's library.\n"
_MIB = 1024 * 1024
# One experiment per VM at a time: two learners pinning the same vCPU would undo each other.
_LOCKS: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


@dataclass(frozen=True)
class Acts:
    """The changes a step may make to its VM, bound to the VM and to whoever runs the step."""

    pin_vcpu: Callable[[int, str], str]  # (vCPU, host CPUs) -> the CPUs applied
    set_balloon: Callable[[int], int]  # MiB -> the target set, KiB
    add_disk: Callable[[float], DeviceChange]  # GiB -> the new disk (a volume of the project's)
    remove_disk: Callable[[str], DeviceChange]  # target -> unplugged, its volume deleted
    insert_media: Callable[[Path], DeviceChange]  # an ISO of the library -> in the first CD drive
    eject_media: Callable[[], DeviceChange]


def _sh(host: Host, name: str, script: str, timeout: float = 120.0) -> ExecResult:
    return guest_exec(host.lookup(name), ["/bin/sh", "-c", script], timeout=timeout)


def _wait(what: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll `what` until it returns something truthy; the last value otherwise (the caller judges)."""
    deadline = time.monotonic() + timeout
    value = what()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = what()
    return value


def _reading(collector: Collector, name: str, interval_s: float = 1.5) -> VmHostView:
    """A host-view reading with rates over `interval_s` (two snapshots)."""
    collector.snapshot([name])
    time.sleep(interval_s)
    return collector.snapshot([name]).vm(name)


def _thread_cpu(pid: int, tid: int) -> int | None:
    text = read_text(f"/proc/{pid}/task/{tid}/stat")
    return int(parse_stat(text)["processor"]) if text else None


@contextlib.contextmanager
def _busy_loops(host: Host, name: str, count: int) -> Iterator[None]:
    """`count` shell busy loops in the guest (one per vCPU the guest scheduler gives them), stopped after."""
    loops = " ".join(["while :; do :; done >/dev/null 2>&1 & echo $! >> " + _BUSY_PIDS + ";"] * count)
    _sh(host, name, f"rm -f {_BUSY_PIDS}; {loops}")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            _sh(host, name, f"kill $(cat {_BUSY_PIDS}) 2>/dev/null; rm -f {_BUSY_PIDS}")


# -- the steps ---------------------------------------------------------------------------------------------

def _process(host: Host, name: str, result: StepResult, acts: Acts) -> None:
    view = Collector(host, timeout_s=5.0).snapshot([name]).vm(name)
    if view.process is None:
        result.skipped = "not_readable"
        return
    proc = view.process
    result.before = {"pid": proc.pid, "user": proc.user, "binary": proc.binary, "accelerator": proc.accelerator,
                     "cmdline": qemu_cmdline(proc.pid),
                     "threads": [{"tid": t.tid, "name": t.name, "role": t.role, "label": t.label}
                                 for t in proc.threads]}
    result.happened = bool(proc.vcpu_threads)


def _vcpu(host: Host, name: str, result: StepResult, acts: Acts) -> None:
    collector = Collector(host, timeout_s=5.0)
    pcpus = host.conn.info()[2]
    with _busy_loops(host, name, 1):
        def busy() -> Any:
            view = _reading(collector, name)
            hot = [v for v in (view.sched.vcpus if view.sched else []) if (v.cpu_share_pct or 0) > 40]
            return (view, max(hot, key=lambda v: v.cpu_share_pct or 0)) if hot else None

        found = _wait(busy, 60, 0)
        if not found:
            result.skipped = "loop_not_seen"
            return
        view, vcpu = found
        assert view.process is not None
        pid = view.process.pid
        result.before = {"vcpu": vcpu.vcpu, "tid": vcpu.tid, "cpu_share_pct": vcpu.cpu_share_pct,
                         "host_cpu": vcpu.last_cpu, "cpus_allowed": vcpu.cpus_allowed, "host_pcpus": pcpus}
        if pcpus < 2:
            result.skipped = "one_pcpu"
            return
        target = (vcpu.last_cpu + 1) % pcpus
        acts.pin_vcpu(vcpu.vcpu, str(target))
        try:
            moved = _wait(lambda: _thread_cpu(pid, vcpu.tid) == target, 30)
            reading = read_thread_sched(pid, vcpu.tid)
            result.after = {"vcpu": vcpu.vcpu, "tid": vcpu.tid, "host_cpu": _thread_cpu(pid, vcpu.tid),
                            "pinned_to": target, "cpus_allowed": reading.cpus_allowed if reading else None}
            result.happened = bool(moved)
        finally:
            acts.pin_vcpu(vcpu.vcpu, vcpu.cpus_allowed)


def _sched(host: Host, name: str, result: StepResult, acts: Acts) -> None:
    collector = Collector(host, timeout_s=5.0)
    first = collector.snapshot([name]).vm(name)
    vcpus = first.sched.vcpus if first.sched else []
    if len(vcpus) < 2:
        result.skipped = "one_vcpu"
        result.before = {"vcpus": len(vcpus)}
        return
    pair = vcpus[:2]
    with _busy_loops(host, name, 2):
        def both_busy() -> Any:
            view = _reading(collector, name, 2.0)
            shares = {v.vcpu: v for v in (view.sched.vcpus if view.sched else [])}
            return view if all((shares[v.vcpu].cpu_share_pct or 0) > 20 for v in pair) else None

        view = _wait(both_busy, 60, 0)
        if not view:
            result.skipped = "loop_not_seen"
            return
        result.before = {"vcpus": [_sched_row(v) for v in view.sched.vcpus[:2]]}
        try:
            for v in pair:
                acts.pin_vcpu(v.vcpu, "0")
            time.sleep(1.0)  # let both threads migrate before the measured interval starts
            after = _reading(collector, name, 3.0)
            rows = [_sched_row(v) for v in (after.sched.vcpus[:2] if after.sched else [])]
            result.after = {"vcpus": rows, "shared_pcpu": 0}
            result.happened = len(rows) == 2 and all(r["host_cpu"] == 0 for r in rows) and \
                all((r["run_delay_pct"] or 0) > 10 for r in rows)
        finally:
            for v in pair:
                acts.pin_vcpu(v.vcpu, v.cpus_allowed)


def _sched_row(v: Any) -> dict[str, Any]:
    return {"vcpu": v.vcpu, "tid": v.tid, "host_cpu": v.last_cpu, "cpu_share_pct": v.cpu_share_pct,
            "run_delay_pct": v.run_delay_pct}


def _memory(host: Host, name: str, result: StepResult, acts: Acts) -> None:
    collector = Collector(host, timeout_s=5.0)
    before = collector.snapshot([name]).vm(name).memory
    if before is None:
        result.skipped = "not_readable"
        return
    fill_mib = max(16, min(128, before.current_kib // 1024 // 3))
    result.before = {"rss_mib": before.rss_kib // 1024, "guest_ram_rss_mib": _mib(before.guest_ram_rss_kib),
                     "guest_memory_mib": before.current_kib // 1024, "fill_mib": fill_mib}
    # dd reads /dev/zero into one buffer of fill_mib: the guest touches that much RAM, then frees it.
    _sh(host, name, f"dd if=/dev/zero of=/dev/null bs={fill_mib}M count=1 2>/dev/null")
    filled = collector.snapshot([name]).vm(name).memory
    assert filled is not None
    result.after = {"rss_mib": filled.rss_kib // 1024, "guest_ram_rss_mib": _mib(filled.guest_ram_rss_kib)}
    maximum_mib = before.configured_kib // 1024
    current_mib = before.current_kib // 1024
    target = max(64, current_mib - fill_mib)
    try:
        acts.set_balloon(target)

        def returned() -> MemoryView | None:
            # The guest's balloon driver hands free pages (likely those dd just freed) to QEMU, which
            # drops them: done when the guest's memory reached the target and RSS stopped falling.
            now = collector.snapshot([name]).vm(name).memory
            if now is None or now.current_kib > target * 1024 + 1024:
                return None
            return now

        _wait(returned, 60)
        time.sleep(1.0)
        last = collector.snapshot([name]).vm(name).memory
        result.after.update({"balloon_target_mib": target,
                             "rss_after_balloon_mib": last.rss_kib // 1024 if last else None})
    finally:
        acts.set_balloon(min(current_mib, maximum_mib))
    result.happened = filled.rss_kib - before.rss_kib >= fill_mib * 1024 // 2


def _mib(kib: int | None) -> int | None:
    return None if kib is None else kib // 1024


def _new_guest_disk(host: Host, name: str, before: set[str], timeout: float = 60) -> str | None:
    def appeared() -> str | None:
        now = _guest_disks(host, name)
        added = sorted(now - before)
        return added[0] if added else None

    found: str | None = _wait(appeared, timeout)
    return found


def _guest_disks(host: Host, name: str) -> set[str]:
    return set(_sh(host, name, "ls /sys/block").stdout.decode().split())


def _storage(host: Host, name: str, result: StepResult, acts: Acts) -> None:
    known = _guest_disks(host, name)
    change = acts.add_disk(0.125)
    try:
        path = change.source or ""
        guest_dev = _new_guest_disk(host, name, known)
        if guest_dev is None:
            result.skipped = "disk_not_seen"
            return
        allocated = Path(path).stat().st_blocks * 512
        cached = page_cache_bytes(path)
        disk = next((d for d in Collector(host, timeout_s=5.0).snapshot([name]).vm(name).disks
                     if d.target == change.key), None)
        result.before = {"image": Path(path).name, "guest_device": guest_dev, "allocated_mib": allocated / _MIB,
                         "cache": disk.cache if disk else None, "cache_meaning": disk.cache_meaning if disk else None,
                         "page_cache_mib": cached[0] / _MIB if cached else None, "write_mib": 32}
        _sh(host, name, f"dd if=/dev/zero of=/dev/{shlex.quote(guest_dev)} bs=1M count=32 conv=fsync 2>/dev/null")
        grown = Path(path).stat().st_blocks * 512
        cached_after = page_cache_bytes(path)
        result.after = {"allocated_mib": grown / _MIB,
                        "page_cache_mib": cached_after[0] / _MIB if cached_after else None}
        result.happened = grown - allocated >= 16 * _MIB
    finally:
        acts.remove_disk(change.key)


def _cpumode(host: Host, name: str, result: StepResult, acts: Acts) -> None:
    view = Collector(host, timeout_s=5.0).snapshot([name]).vm(name)
    mode = view.cpu_mode
    if mode is None:
        result.skipped = "not_readable"
        return
    tcg_kib = view.memory.tcg_code_cache_rss_kib if view.memory else None
    result.before = {"accelerator": mode.accelerator, "why": mode.why, "host_extensions": mode.host_extensions,
                     "kvm_device": mode.kvm_device, "kvm_module": mode.kvm_module,
                     "exits_available": mode.exits_available, "exits": dict(sorted(mode.exits.items())[:8]),
                     "tcg_code_cache_mib": _mib(tcg_kib)}
    result.happened = True


def _learn_iso() -> Path:
    """The CD step's disc in the ISO library, made once (a tiny ISO 9660 image with one text file)."""
    target = iso_dir() / LEARN_ISO
    if not target.exists():
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "hello.txt").write_text(_LEARN_TEXT)
            iso_dir().mkdir(parents=True, exist_ok=True)
            make_iso(folder, target, label="VMDECK_LEARN")
    return target


def _cd_label(host: Host, name: str, dev: str) -> str:
    """The volume label of the disc in guest drive `dev` ("" when empty): bytes 40-71 of the ISO 9660
    primary volume descriptor, sector 16. Read in the guest, so it shows what the guest sees."""
    script = (f"dd if=/dev/{shlex.quote(dev)} bs=2048 skip=16 count=1 2>/dev/null"
              " | dd bs=1 skip=40 count=32 2>/dev/null")
    return _sh(host, name, script).stdout.decode(errors="replace").strip()


def _cdrom(host: Host, name: str, result: StepResult, acts: Acts) -> None:
    drives = sorted(d for d in _guest_disks(host, name) if d.startswith("sr"))
    if not drives:
        result.skipped = "no_cd_drive"
        return
    dev = drives[0]
    label_before = _cd_label(host, name, dev)
    if label_before:
        result.skipped = "drive_in_use"  # the learner's own disc stays where it is
        result.before = {"guest_device": dev, "disc_label": label_before}
        return
    iso = _learn_iso()
    result.before = {"guest_device": dev, "disc_label": "", "iso": iso.name}
    acts.insert_media(iso)
    try:
        label = _wait(lambda: _cd_label(host, name, dev), 60)
        result.after = {"guest_device": dev, "disc_label": label}
        result.happened = bool(label)
    finally:
        acts.eject_media()
    result.after["ejected"] = bool(_wait(lambda: not _cd_label(host, name, dev), 30))


def _hotplug(host: Host, name: str, result: StepResult, acts: Acts) -> None:
    known = _guest_disks(host, name)
    result.before = {"guest_disks": sorted(known)}
    change = acts.add_disk(0.0625)
    try:
        dev = _new_guest_disk(host, name, known)
        result.after = {"guest_disks": sorted(_guest_disks(host, name)), "new_device": dev, "target": change.key}
        result.happened = dev is not None
    finally:
        acts.remove_disk(change.key)
    gone = _wait(lambda: _guest_disks(host, name) == known, 60)
    result.after["removed"] = bool(gone)


_RUNNERS: dict[str, Callable[[Host, str, StepResult, Acts], None]] = {
    "process": _process, "vcpu": _vcpu, "sched": _sched, "memory": _memory, "storage": _storage,
    "cpumode": _cpumode, "cdrom": _cdrom, "hotplug": _hotplug,
}


def run_step(host: Host, name: str, step_id: str, acts: Acts) -> StepResult:
    """Run one experiment on running VM `name`, changing it through `acts`, and undo it; NotFound for an unknown
    step or VM,
    StateError when the VM does not run, GuestError when a step needs the guest agent and it is absent."""
    chosen = step(step_id)
    dom = host.lookup(name)
    state = current_state(dom)
    if state not in ACTIVE_STATES:
        raise StateError(name, str(state), "running", f"run the Learn step {step_id!r} on")
    result = StepResult(step=chosen.id, vm=name)
    started = time.monotonic()
    lock = _LOCKS[(host.uri, name)]
    if not lock.acquire(timeout=300):
        raise StateError(name, "busy with another Learn step", "idle", f"run the Learn step {step_id!r} on")
    try:
        _RUNNERS[chosen.id](host, name, result, acts)
    finally:
        lock.release()
        result.duration_s = round(time.monotonic() - started, 1)
    return result

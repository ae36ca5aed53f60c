"""The host view against real VMs: each test does something in the guest (or to its QEMU) and checks the
effect where the host shows it: /proc of the QEMU process, the image file, and the host view itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vmdeck.host.connection import Host
from vmdeck.hostview.collect import Collector, Snapshot
from vmdeck.hostview.cpumode import TCG_NO_EXITS
from vmdeck.hostview.process import read_libvirt_record

MiB = 1024 * 1024
VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]


def _pid(name: str) -> int:
    return int(Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip())


def _proc_status(pid: int, tid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _view(host: Host, name: str, interval: float = 0.0) -> Snapshot:
    collector = Collector(host)
    snap = collector.snapshot([name])
    if interval:
        time.sleep(interval)
        snap = collector.snapshot([name])
    return snap


def test_thread_map_names_each_vcpu_thread_with_libvirts_ids(shared_vm: str, cli: Callable) -> None:
    result = cli("hostview", shared_vm, "--json", "--interval", "0")
    assert result.returncode == 0, result.stderr
    vm = json.loads(result.stdout)["vms"][0]
    vcpu_threads = [t for t in vm["process"]["threads"] if t["role"] == "vcpu"]
    assert len(vcpu_threads) == vm["vcpus"] == 2
    pid = vm["process"]["pid"]
    assert pid == _pid(shared_vm)
    # libvirt's map, as libvirt recorded it and as it acted on it: each vCPU thread in its own vcpuN cgroup.
    record = read_libvirt_record(shared_vm)
    assert record is not None and record.vcpu_tids == {t["vcpu"]: t["tid"] for t in vcpu_threads}
    for thread in vcpu_threads:
        assert thread["libvirt_vcpu"] == thread["vcpu"]
        assert Path(f"/proc/{pid}/task/{thread['tid']}/comm").read_text().strip() == f"CPU {thread['vcpu']}/TCG"
        cgroup = Path(f"/proc/{pid}/task/{thread['tid']}/cgroup").read_text()
        assert f"/vcpu{thread['vcpu']}\n" in cgroup
    assert vm["process"]["thread_map_ok"] is True
    assert {t["role"] for t in vm["process"]["threads"]} >= {"main", "monitor-io", "vcpu"}


def test_tcg_view_says_why_there_are_no_exits(shared_vm: str, cli: Callable) -> None:
    data = json.loads(cli("hostview", shared_vm, "--json", "--interval", "0").stdout)
    mode = data["vms"][0]["cpu_mode"]
    assert mode["accelerator"] == "TCG" and mode["exits_available"] is False and mode["exits"] == {}
    assert mode["exits_note"] == TCG_NO_EXITS
    text = cli("hostview", shared_vm, "--interval", "0.5")
    assert text.returncode == 0, text.stderr
    assert "no VM exits under TCG" in " ".join(text.stdout.split())
    assert "Traceback" not in text.stderr


def test_cpu_loop_in_the_guest_shows_on_that_vcpus_thread(vm_factory: Callable, run_in_guest: Callable,
                                                         host: Host) -> None:
    name = vm_factory(vcpus=2, memory_mib=128, suffix="hv-cpu")
    # Pinned inside the guest to guest CPU 0, so only vCPU 0's host thread should get busy.
    started = run_in_guest(name, "taskset 1 sh -c 'while :; do :; done' </dev/null >/dev/null 2>&1 & echo $!")
    assert started.exit_code == 0, started.stderr
    time.sleep(1.0)  # let the loop get going before the measured interval
    vm = _view(host, name, interval=3.0).vm(name)
    busy, other = vm.sched.vcpus
    run_in_guest(name, f"kill {started.stdout.decode().strip()}")
    assert busy.cpu_share_pct is not None and other.cpu_share_pct is not None
    # On a loaded host the busy thread may spend much of the interval waiting in the run queue:
    # what proves the loop is on vCPU 0 is that it wanted the CPU the whole time (ran or waited)
    # while vCPU 1 stayed idle, not a fixed share of a CPU it has to share with others.
    assert busy.run_delay_pct is not None
    assert busy.cpu_share_pct + busy.run_delay_pct >= 75, (busy, other)
    assert busy.cpu_share_pct >= 3 * other.cpu_share_pct, (busy, other)
    assert other.cpu_share_pct <= 15, (busy, other)


def test_pinning_a_vcpu_shows_in_proc_and_in_the_view(vm_factory: Callable, host: Host, cli: Callable) -> None:
    name = vm_factory(vcpus=2, memory_mib=128, suffix="hv-pin")
    pinned = cli("pin", name, "--vcpu", "0", "--cpus", "1")
    assert pinned.returncode == 0, pinned.stderr
    emulator = cli("pin", name, "--emulator", "--cpus", "0")
    assert emulator.returncode == 0, emulator.stderr
    vm = _view(host, name).vm(name)
    pid = _pid(name)
    vcpu0, vcpu1 = vm.sched.vcpus
    assert _proc_status(pid, vcpu0.tid)["Cpus_allowed_list"] == "1"
    assert _proc_status(pid, vcpu1.tid)["Cpus_allowed_list"] == "0-1"
    assert _proc_status(pid, pid)["Cpus_allowed_list"] == "0"
    assert (vcpu0.cpus_allowed, vcpu1.cpus_allowed, vm.sched.emulator_cpus_allowed) == ("1", "0-1", "0")
    bad = cli("pin", name, "--vcpu", "0", "--cpus", "64")
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_touching_memory_then_ballooning(vm_factory: Callable, run_in_guest: Callable, host: Host,
                                          cli: Callable) -> None:
    name = vm_factory(vcpus=1, memory_mib=384, suffix="hv-mem")
    before = _view(host, name).vm(name).memory
    touched = run_in_guest(name, "mkdir -p /dev/shm && mount -t tmpfs -o size=200m tmpfs /dev/shm && "
                                 "dd if=/dev/zero of=/dev/shm/x bs=1M count=128 2>&1")
    assert touched.exit_code == 0, touched.stdout
    after = _view(host, name).vm(name).memory
    assert after.rss_kib - before.rss_kib >= 100 * 1024, (before.rss_kib, after.rss_kib)
    # Most of the rise is in the guest RAM mapping; some of the 128 MiB reuse pages the guest touched at boot.
    assert after.guest_ram_rss_kib - before.guest_ram_rss_kib >= 90 * 1024
    run_in_guest(name, "rm /dev/shm/x")

    def guest_memtotal_kib() -> int:
        out = run_in_guest(name, "grep MemTotal /proc/meminfo").stdout.decode()
        return int(out.split()[1])

    total_before = guest_memtotal_kib()
    result = cli("balloon", name, "200")
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 30
    while guest_memtotal_kib() > 200 * 1024 and time.monotonic() < deadline:
        time.sleep(0.5)
    total_after = guest_memtotal_kib()
    # virtio_balloon takes the pages out of the guest's MemTotal (no deflate-on-oom on this device).
    assert total_after <= 200 * 1024 < total_before, (total_before, total_after)
    # libvirt's balloon.current follows QEMU's BALLOON_CHANGE events, which trail the guest a little.
    ballooned = _view(host, name).vm(name).memory
    while ballooned.current_kib != 200 * 1024 and time.monotonic() < deadline + 30:
        time.sleep(0.5)
        ballooned = _view(host, name).vm(name).memory
    assert ballooned.current_kib == 200 * 1024 and ballooned.configured_kib == 384 * 1024
    assert ballooned.rss_kib < after.rss_kib - 64 * 1024  # the pages went back to the host
    too_much = cli("balloon", name, "4096")
    assert too_much.returncode == 2 and "configured with (384 MiB)" in too_much.stderr


def test_writing_to_the_disk_grows_the_image_and_the_counters(vm_factory: Callable, run_in_guest: Callable,
                                                             host: Host) -> None:
    name = vm_factory(vcpus=1, memory_mib=128, suffix="hv-disk")
    before = next(d for d in _view(host, name).vm(name).disks if d.target == "vda")
    wrote = run_in_guest(name, "dd if=/dev/urandom of=/dev/vda bs=1M count=64 conv=fsync 2>&1", timeout=120)
    assert wrote.exit_code == 0, wrote.stdout
    after = next(d for d in _view(host, name).vm(name).disks if d.target == "vda")
    assert after.host_allocated_bytes - before.host_allocated_bytes >= 64 * MiB
    assert os.stat(after.path).st_blocks * 512 == after.host_allocated_bytes
    assert after.write_bytes - before.write_bytes >= 64 * MiB
    assert after.write_reqs > before.write_reqs


def test_shut_off_and_killed_vms_give_a_clear_message(vm_factory: Callable, cli: Callable, host: Host) -> None:
    off = vm_factory(start=False, suffix="hv-off")
    result = cli("hostview", off)
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: cannot show the host view (its QEMU process) of VM '{off}': "
                                     "it is shut off, it must be running")
    killed = vm_factory(vcpus=1, memory_mib=96, suffix="hv-kill")
    os.kill(_pid(killed), signal.SIGKILL)
    time.sleep(1.0)
    result = cli("hostview", killed)
    assert result.returncode == 4 and "Traceback" not in result.stderr, result.stderr
    assert "crashed or was killed" in result.stderr or "is gone" in result.stderr, result.stderr
    missing = cli("hostview", "vmdeck-test-no-such-vm")
    assert missing.returncode == 3 and "no VM named" in missing.stderr


def test_watch_redraws_with_sparklines(shared_vm: str) -> None:
    # Into a pipe, rich draws only the last frame at exit; TTY_COMPATIBLE=1 makes it draw every frame, so
    # the test can see when the watch loop (which catches Ctrl-C) is running.
    env = {**os.environ, "COLUMNS": "200", "TTY_COMPATIBLE": "1"}
    proc = subprocess.Popen([*VMDECK, "hostview", shared_vm, "--watch", "--interval", "0.3", "--fast"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # A loaded machine may take long to start the CLI; the timer bounds the wait (a killed CLI ends stdout).
    watchdog = threading.Timer(300, proc.kill)
    watchdog.start()
    try:
        # The first frame is drawn just before the loop, the second inside it: SIGINT only after that.
        assert proc.stdout is not None
        drawn: list[str] = []
        frames = 0
        for line in proc.stdout:
            drawn.append(line)
            frames += "Scheduling" in line
            if frames == 2:
                break
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
    out = "".join(drawn) + rest
    assert proc.returncode == 0, err
    assert "Scheduling" in out and "vCPU 0" in out
    assert any(bar in out for bar in "▁▂▃▄▅▆▇█"), out

"""Density: many tiny VMs running at once; what each costs the host, started by vmdeck and by virsh.

    .venv/bin/python bench/bench_density.py [--vms 100] [--memory 96] [--tb-cache 16] [--write]

1. vmdeck: N diskless tiny VMs (1 vCPU, --memory MiB, TCG translation cache --tb-cache MiB) are created and
   started with `vmdeck start --wait` (N names, one command), then per VM: QEMU's RSS, the part of it that
   is guest RAM actually touched (the RAM mapping's resident size in /proc/PID/smaps) and the rest (QEMU's
   own per-VM overhead: TCG code cache, device state, libraries). Processes besides QEMU that vmdeck left
   running are counted (expected 0). Then `vmdeck serve` runs with the N VMs: its RSS, and GET /api/vms and
   /api/vms/{name} with 20 concurrent clients (p50/p99).
2. virsh: the VMs are powered off and started again from the same definitions with `virsh start` (20 at
   once), and the same per-VM figures are read.
N is lowered when the host's available memory is short (the output says so). Everything is deleted at
the end. The run loads the host heavily: run it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_web import api_token, server_rss_mib, start_server, wrk_load
from perfdoc import command_line, host_load, spread, stamp, tolerate_starved_vcpus, write_section

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host, connect
from vmdeck.hostview.memory import read_memory
from vmdeck.hostview.process import read_libvirt_record
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.boot import MAX_PARALLEL_STARTS
from vmdeck.vm.create import create_vm
from vmdeck.vm.lifecycle import READY_MARKER

PREFIX = "vmdeck-dev-bench-density-"
VMDECK = str(Path(sys.executable).parent / "vmdeck")
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
TITLE = "Density"
PER_VM_BUDGET_MIB = 200  # a 64-96 MiB tiny guest's QEMU with a 16 MiB translation cache, with margin
KEEP_FREE_MIB = 2048  # for the host, libvirtd and `vmdeck serve` while the VMs run


def available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def per_vm_memory(host: Host, names: list[str], memory_mib: int) -> list[tuple[float, float, float]]:
    """(RSS, guest RAM touched, rest) in MiB for each running VM, from /proc/PID/status and smaps."""
    rows = []
    for name in names:
        record = read_libvirt_record(name)
        if record is None or record.pid is None:
            continue
        view = read_memory(record.pid, memory_mib * 1024, memory_mib * 1024, {}, detailed=True)
        if view is None:
            continue
        touched = (view.guest_ram_rss_kib or 0) / 1024
        rss = view.rss_kib / 1024
        rows.append((rss, touched, rss - touched))
    return rows


def vmdeck_processes() -> set[int]:
    """Pids of processes running this worktree's vmdeck (besides this benchmark): expected none."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                if VMDECK.encode() in argv or (sys.executable.encode() in argv[:1] and b"vmdeck.cli.main" in argv):
                    pids.add(int(entry))
    return pids


def virsh_start_all(names: list[str], logs: dict[str, Path], timeout: float) -> float:
    started = time.perf_counter()
    for first in range(0, len(names), MAX_PARALLEL_STARTS):
        batch = [subprocess.Popen([*VIRSH, "start", n], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for n in names[first:first + MAX_PARALLEL_STARTS]]
        for proc in batch:
            proc.wait(timeout)
    pending = set(names)
    while pending and time.perf_counter() - started < timeout:
        for name in list(pending):
            with contextlib.suppress(OSError):
                if READY_MARKER.encode() in logs[name].read_bytes():
                    pending.discard(name)
        time.sleep(0.2)
    if pending:
        raise RuntimeError(f"not ready within {timeout} s: {len(pending)} VMs")
    return time.perf_counter() - started


def cleanup(host: Host) -> None:
    for dom in host.conn.raw.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            with contextlib.suppress(NotFound):
                lifecycle.delete(host, dom.name(), force=True)


def summary_row(label: str, rows: list[tuple[float, float, float]]) -> str:
    rss, touched, rest = ([r[i] for r in rows] for i in range(3))
    return (f"| {label} | {len(rows)} | {spread(rss, 'MiB')} | {spread(touched, 'MiB')} | {spread(rest, 'MiB')} | "
            f"{sum(rss) / 1024:.1f} GiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--memory", type=int, default=96, help="MiB per VM (64-96; the tiny guest needs ~96 to boot)")
    parser.add_argument("--tb-cache", type=int, default=16, help="TCG translation cache per VM, MiB")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="API load per endpoint")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--write", action="store_true", help="put the section into docs/PERFORMANCE.md")
    args = parser.parse_args()
    load = host_load()
    avail = available_mib()
    count = min(args.vms, max(1, (avail - KEEP_FREE_MIB) // PER_VM_BUDGET_MIB))
    note = "" if count == args.vms else (f" (asked for {args.vms}; {avail} MiB available, "
                                         f"{PER_VM_BUDGET_MIB} MiB budgeted per VM and {KEEP_FREE_MIB} MiB kept free)")
    print(f"{count} VMs{note}", flush=True)
    host = connect("qemu:///system")
    names = [f"{PREFIX}{i:03d}" for i in range(count)]
    logs: dict[str, Path] = {}
    process = None
    try:
        for name in names:
            spec = resolve("tiny", name, Overrides(vcpus=1, memory_mib=args.memory))
            create_vm(host, spec.model_copy(update={"disks": (), "cdroms": (), "tcg_tb_cache_mib": args.tb_cache}))
            tolerate_starved_vcpus(host, name)
            logs[name] = Path(f"/var/log/libvirt/qemu/{name}-serial.log")
        started = time.perf_counter()
        done = subprocess.run([VMDECK, "start", "--wait", "--timeout", str(args.timeout), *names],
                              capture_output=True, text=True, timeout=args.timeout + 120)
        if done.returncode:
            raise RuntimeError(f"vmdeck start failed: {done.stderr.strip()[-500:]}")
        vmdeck_boot = time.perf_counter() - started
        time.sleep(10)  # let the guests settle (their shells idle) before reading memory
        extra = len(vmdeck_processes())
        ours = per_vm_memory(host, names, args.memory)
        print(summary_row("vmdeck", ours), flush=True)

        folder = Path(tempfile.mkdtemp(prefix="vmdeck-bench-density-"))
        process, url = start_server(folder)
        token, _cookie = api_token(url)
        show = f"/api/vms/{names[0]}"
        for path in ("/api/vms", show):  # warm-up: the inventory is loaded, the show view computed
            wrk_load(url, token, path, 2, 1)
        loads = {path: wrk_load(url, token, path, args.clients, args.seconds) for path in ("/api/vms", show)}
        serve_rss = server_rss_mib(process)
        process.terminate()
        process.wait(10)
        process = None

        for name in names:
            with contextlib.suppress(Exception):
                host.lookup(name).poweroff()
            with contextlib.suppress(OSError):
                logs[name].write_bytes(b"")
        virsh_boot = virsh_start_all(names, logs, args.timeout)
        time.sleep(10)
        theirs = per_vm_memory(host, names, args.memory)
        print(summary_row("virsh", theirs), flush=True)
    finally:
        if process is not None:
            process.terminate()
        cleanup(host)

    api_rows = []
    for label, path in (("GET /api/vms (list)", "/api/vms"), ("GET /api/vms/{name} (show)", show)):
        p50, p99 = loads[path].p50_ms, loads[path].p99_ms
        api_rows.append(f"| {label} | {p50:.1f} | {p99:.1f} | **{'met' if p50 <= 30 and p99 <= 200 else 'missed'}** |")
    rest_ratio = statistics.median([r[2] for r in ours]) / statistics.median([r[2] for r in theirs])
    body = "\n".join([
        f"Command: `{command_line()}` ({stamp()}; {load} and {avail} MiB available at the start).", "",
        f"{count} diskless tiny VMs{note} running at once: 1 vCPU, {args.memory} MiB, TCG with a "
        f"{args.tb_cache} MiB translation cache. Per VM, medians (min-max): QEMU's RSS, the guest RAM "
        "actually touched (resident part of the RAM mapping, /proc/PID/smaps) and the rest (QEMU's own "
        "overhead). Started by vmdeck (`vmdeck start --wait` with all names: "
        f"{vmdeck_boot:.0f} s to ready), then powered off and started by `virsh start` ({virsh_boot:.0f} s).", "",
        "| started by | VMs | QEMU RSS | guest RAM touched | rest (per-VM overhead) | all QEMUs |",
        "|---|---|---|---|---|---|",
        summary_row("vmdeck", ours),
        summary_row("virsh", theirs), "",
        f"Per-VM overhead vmdeck / virsh: **{rest_ratio:.2f}x** (the same QEMU command line: vmdeck adds "
        f"nothing per VM). vmdeck processes left running once the VMs run: **{extra}** "
        "(QEMU is started by libvirtd; vmdeck adds no per-VM process).", "",
        f"`vmdeck serve` with the {count} VMs: RSS **{serve_rss:.0f} MiB** (target <= 150 MiB: "
        f"**{'met' if serve_rss <= 150 else 'missed'}**); {args.clients} concurrent clients, "
        f"{args.seconds:g} s per endpoint (wrk):", "",
        "| request | p50 ms | p99 ms | target p50 <= 30, p99 <= 200 |", "|---|---|---|---|", *api_rows,
    ])
    print(f"## {TITLE}\n\n{body}")
    if args.write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()

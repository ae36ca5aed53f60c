"""Benchmark: one host-view refresh of N running tiny VMs against the per-VM `virsh domstats` calls.

    .venv/bin/python bench/bench_hostview.py --counts 1,10,50 --rounds 5 [--write]

For each N it boots N tiny VMs (no disk, --memory MiB, 1 vCPU; named vmdeck-dev-bench-hv-*), then in
the same run times:
  - vmdeck refresh (core): Collector.snapshot(names) — the full view (smaps, page cache) and --fast;
  - vmdeck CLI: `vmdeck hostview NAMES --json --interval 0` (one process, includes Python start-up);
  - baseline: the sum of `virsh domstats NAME` for every VM (one process each, as a script would);
  - and, for reference, one `virsh domstats NAMES...` process for all of them.
Median of --rounds. The VMs are deleted at the end (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from perfdoc import command_line, host_load, spread, stamp, write_section

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host, connect
from vmdeck.hostview.collect import Collector
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm

PREFIX = "vmdeck-dev-bench-hv-"
VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]


def once_ms(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def ensure_vms(host: Host, count: int, memory_mib: int) -> list[str]:
    names = [f"{PREFIX}{i:02d}" for i in range(count)]
    for name in names:
        if host.exists(name):
            continue
        spec = resolve("tiny", name, Overrides(vcpus=1, memory_mib=memory_mib))
        # No disk and no CD drive: 50 of these must fit 2 cores and the time budget.
        spec = spec.model_copy(update={"disks": (), "cdroms": (), "tcg_tb_cache_mib": 16})
        create_vm(host, spec)
        lifecycle.start(host, name, wait=False)
    # Let the boots finish (each tiny boot is ~2 s of TCG CPU) so the timings see idle VMs.
    for name in names:
        with contextlib.suppress(Exception):
            lifecycle.wait_ready(host, name, timeout=300)
    return names


def cleanup(host: Host) -> None:
    for dom in host.conn.raw.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            with contextlib.suppress(NotFound):
                lifecycle.delete(host, dom.name(), force=True)


TITLE = "Host view"


def run(counts: list[int], rounds: int, memory_mib: int, write: bool) -> None:
    load = host_load()
    host = connect("qemu:///system")
    rows = []
    try:
        for count in counts:
            names = ensure_vms(host, count, memory_mib)
            full = Collector(host)
            fast = Collector(host, detailed=False, page_cache=False)
            full.snapshot(names)  # warm-up: first call resolves host facts
            fast.snapshot(names)

            def per_vm_virsh(names: list[str] = names) -> None:
                for name in names:
                    subprocess.run(["virsh", "-c", "qemu:///system", "domstats", name], check=True,
                                   capture_output=True)

            actions: dict[str, Callable[[], object]] = {
                "fast": lambda names=names: fast.snapshot(names),
                "full": lambda names=names: full.snapshot(names),
                "cli": lambda names=names: subprocess.run(
                    [*VMDECK, "hostview", *names, "--json", "--interval", "0", "--fast"], check=True,
                    capture_output=True),
                "virsh_each": per_vm_virsh,
                "virsh_one": lambda names=names: subprocess.run(
                    ["virsh", "-c", "qemu:///system", "domstats", *names], check=True, capture_output=True),
            }
            samples: dict[str, list[float]] = {key: [] for key in actions}
            stale = 0
            for index in range(rounds):  # interleaved; the order flips every round
                for key in (list(actions) if index % 2 == 0 else list(reversed(actions))):
                    samples[key].append(once_ms(actions[key]))
                stale += sum(vm.stale for vm in fast.previous.vms) if fast.previous else 0
            rows.append((count, samples, stale))
            print(f"N={count}: fast {spread(samples['fast'])}, full {spread(samples['full'])}, "
                  f"stale {stale}", flush=True)
    finally:
        cleanup(host)
    lines = [
        f"Command: `{command_line()}` ({stamp()}; {load} at the start).", "",
        f"N running tiny VMs (1 vCPU, {memory_mib} MiB, no disk, TCG); {rounds} interleaved rounds (the order flips "
        "every round), medians (min-max). The fast refresh (`--fast`: libvirt's STATE and VCPU stats groups only, "
        "no QEMU monitor round trip; the domain XML and libvirt's record kept per QEMU process; full thread reads "
        "for vCPU threads only) against the raw tools: one `virsh domstats` per VM (as a script would) and one "
        "`virsh domstats` for all N (libvirt's bulk call plus virsh's start-up). Target: fast refresh of 50 VMs "
        "<= 300 ms.", "",
        "| running VMs | fast refresh (in process) | full refresh (smaps, page cache) | `vmdeck hostview --fast --json` "
        "process | per-VM `virsh domstats`, summed | one `virsh domstats` for all | fast / one virsh | "
        "VMs marked stale (all rounds) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for count, samples, stale in rows:
        ratio = statistics.median(samples["fast"]) / statistics.median(samples["virsh_one"])
        verdict = ""
        if count == 50:
            verdict = f" (target <= 300 ms: **{'met' if statistics.median(samples['fast']) <= 300 else 'missed'}**)"
        lines.append(f"| {count} | {spread(samples['fast'])}{verdict} | {spread(samples['full'])} | "
                     f"{spread(samples['cli'])} | {spread(samples['virsh_each'])} | {spread(samples['virsh_one'])} | "
                     f"{ratio:.2f}x | {stale} |")
    body = "\n".join(lines)
    print(f"## {TITLE}\n\n{body}")
    if write:
        write_section(TITLE, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory", type=int, default=96, help="MiB per VM")
    parser.add_argument("--write", action="store_true", help="put the section into docs/PERFORMANCE.md")
    args = parser.parse_args()
    run([int(c) for c in args.counts.split(",")], args.rounds, args.memory, args.write)


if __name__ == "__main__":
    main()

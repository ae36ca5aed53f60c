"""Benchmark: one host-view refresh of N running tiny VMs against the per-VM `virsh domstats` calls.

    .venv/bin/python bench/bench_hostview.py --counts 1,10,50 --rounds 5

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

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host, connect
from vmdeck.hostview.collect import Collector
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm

PREFIX = "vmdeck-dev-bench-hv-"
VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]


def median_ms(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def ensure_vms(host: Host, count: int, memory_mib: int) -> list[str]:
    names = [f"{PREFIX}{i:02d}" for i in range(count)]
    for name in names:
        if host.exists(name):
            continue
        spec = resolve("tiny", name, Overrides(vcpus=1, memory_mib=memory_mib))
        # No disk and no CD drive: 50 of these must fit 2 cores and the time budget.
        spec = spec.model_copy(update={"disks": (), "cdroms": ()})
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


def run(counts: list[int], rounds: int, memory_mib: int) -> None:
    host = connect("qemu:///system")
    rows = []
    try:
        for count in counts:
            names = ensure_vms(host, count, memory_mib)
            full = Collector(host)
            fast = Collector(host, detailed=False, page_cache=False)
            full.snapshot(names)  # warm-up: first call resolves host facts
            fast.snapshot(names)
            t_full = median_ms(lambda names=names: full.snapshot(names), rounds)
            t_fast = median_ms(lambda names=names: fast.snapshot(names), rounds)
            stale = sum(vm.stale for vm in full.previous.vms) if full.previous else 0
            t_cli = median_ms(lambda names=names: subprocess.run(
                [*VMDECK, "hostview", *names, "--json", "--interval", "0"], check=True, capture_output=True), rounds)

            def per_vm_virsh(names: list[str] = names) -> None:
                for name in names:
                    subprocess.run(["virsh", "-c", "qemu:///system", "domstats", name], check=True,
                                   capture_output=True)

            t_virsh = median_ms(per_vm_virsh, rounds)
            t_virsh_one = median_ms(lambda names=names: subprocess.run(
                ["virsh", "-c", "qemu:///system", "domstats", *names], check=True, capture_output=True), rounds)
            rows.append((count, t_full, t_fast, t_cli, t_virsh, t_virsh_one, stale))
            print(f"N={count}: refresh {t_full:.1f} ms (fast {t_fast:.1f}), CLI {t_cli:.0f} ms, "
                  f"sum of per-VM virsh domstats {t_virsh:.0f} ms, one virsh domstats {t_virsh_one:.0f} ms, "
                  f"stale {stale}", flush=True)
    finally:
        cleanup(host)
    print()
    print("| running VMs | vmdeck refresh (full) | vmdeck refresh (--fast) | `vmdeck hostview --json` process "
          "| sum of per-VM `virsh domstats` | per-VM virsh / fast refresh | one `virsh domstats` for all |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for count, t_full, t_fast, t_cli, t_virsh, t_virsh_one, _stale in rows:
        print(f"| {count} | {t_full:.1f} ms | {t_fast:.1f} ms | {t_cli:.0f} ms | {t_virsh:.0f} ms | "
              f"{t_virsh / t_fast:.1f}x | {t_virsh_one:.0f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory", type=int, default=96, help="MiB per VM")
    args = parser.parse_args()
    run([int(c) for c in args.counts.split(",")], args.rounds, args.memory)


if __name__ == "__main__":
    main()

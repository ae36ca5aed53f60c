"""`vmdeck top` on the real libvirtd: the session's shared VM with its CPU and memory, as JSON and as the
refreshing table (two refreshes, not on a terminal), and a bad --sort refused with one line."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable


def test_top_json_lists_the_running_vm_with_rates(cli: Callable[..., subprocess.CompletedProcess[str]],
                                                  shared_vm: str) -> None:
    done = cli("top", "--json", "--interval", "1", "--sort", "name")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    row = next(vm for vm in answer["vms"] if vm["name"] == shared_vm)
    assert row["running"] and row["vcpus"] == 2 and row["memory_bytes"] == 256 * 1024 * 1024
    assert row["cpu_pct"] is not None and row["cpu_pct"] >= 0
    assert row["rss_bytes"] > 0
    assert answer["host"]["pcpus"] >= 1 and answer["host"]["vcpus_allocated"] >= 2
    names = [vm["name"] for vm in answer["vms"] if vm["running"]]
    assert names == sorted(names)


def test_top_refreshes_a_table(cli: Callable[..., subprocess.CompletedProcess[str]], shared_vm: str) -> None:
    done = cli("top", "--iterations", "2", "--interval", "0.5", "--sort", "memory")
    assert done.returncode == 0, done.stderr
    assert shared_vm[:20] in done.stdout and "CPU %" in done.stdout and "sorted by memory" in done.stdout


def test_top_refuses_an_unknown_order(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = cli("top", "--sort", "colour")
    assert done.returncode != 0 and "--sort: one of cpu, memory, disk, net, name" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

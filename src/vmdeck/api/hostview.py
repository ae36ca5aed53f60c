"""REST endpoints for the host view: how a VM looks from the host (api layer).

A thin layer over vmdeck.hostview.collect.Collector. One collector per VM is
kept between calls, because rates (CPU share, run-queue delay, disk bytes/s)
are differences between two snapshots; the page polls every couple of seconds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Depends, Request

from vmdeck.api.context import request_host
from vmdeck.api.policy import Grant, grant_of
from vmdeck.host.connection import Host
from vmdeck.hostview.collect import Collector
from vmdeck.hostview.process import cmdline_options, qemu_cmdline

__all__ = ["router", "chart_view"]

router = APIRouter(tags=["hostview"])
_lock = threading.Lock()
# Collectors kept at most: the least recently used goes first, so made-up or deleted VM names
# cannot grow the server's memory (a collector holds the previous snapshot for its rates).
MAX_COLLECTORS = 64


def _collector(request: Request, host: Host, key: str) -> Collector:
    collectors: OrderedDict[str, Collector] = request.app.state.ctx.extra.setdefault("hostview", OrderedDict())
    with _lock:
        collector = collectors.get(key)
        if collector is None or collector.host is not host:  # reconnected: start over
            collector = collectors[key] = Collector(host, timeout_s=2.0)
        collectors.move_to_end(key)
        while len(collectors) > MAX_COLLECTORS:
            collectors.popitem(last=False)
        return collector


def chart_view(vm: dict[str, Any]) -> dict[str, Any]:
    """The numbers the VM page draws, picked from one VM's snapshot (units in the names)."""
    sched = vm.get("sched") or {}
    memory = vm.get("memory") or {}
    process = vm.get("process") or {}
    mode = vm.get("cpu_mode") or {}
    by_tid = {v["tid"]: v for v in sched.get("vcpus", [])}
    io = [d.get("read_bytes_per_s") or 0 for d in vm.get("disks", [])] + \
         [d.get("write_bytes_per_s") or 0 for d in vm.get("disks", [])]
    threads = []
    for thread in process.get("threads", []):
        vcpu = by_tid.get(thread["tid"])
        threads.append({"tid": thread["tid"], "name": thread["name"], "role": thread["label"],
                        "cpu": vcpu["last_cpu"] if vcpu else None, "state": vcpu["state"] if vcpu else None})
    summary = ""
    if process:
        summary = (f"QEMU pid {process['pid']} ({process['accelerator']}), {len(threads)} threads; "
                   f"{mode.get('why', '')}").strip()
    return {
        "name": vm["name"], "state": vm["state"], "stale": vm.get("stale", False), "error": vm.get("error"),
        "summary": vm.get("error") or summary,
        "vcpus": [{"vcpu": v["vcpu"], "cpu_pct": v.get("cpu_share_pct"),
                   "delay_ms_per_s": None if v.get("run_delay_pct") is None else v["run_delay_pct"] * 10}
                  for v in sched.get("vcpus", [])],
        "rss_mib": memory["rss_kib"] / 1024 if memory.get("rss_kib") is not None else None,
        "disk_kib_per_s": sum(io) / 1024 if vm.get("disks") else None,
        "threads": threads,
        "cpu_mode": mode,
    }


@router.get("/api/vms/{name}/hostview")
def vm_hostview(name: str, request: Request, host: Host = Depends(request_host),
                grant: Grant = Depends(grant_of)) -> dict[str, Any]:
    """One running VM from the host: per-vCPU CPU and run-queue delay, RSS, disk I/O, threads, CPU mode.

    `detail` is the full host-view snapshot of the VM (as `vmdeck hostview --json` gives it); `host`
    (the whole host: overcommit, memory features) is for administrators only, null for others.
    """
    snapshot = _collector(request, host, name).snapshot([name]).to_dict()
    vm = snapshot["vms"][0]
    whole_host = grant.principal is not None and grant.principal.admin
    # QEMU's command line, one option per line (`vmdeck show NAME --qemu-cmdline`). A tenant's answer has
    # its host folders cut on the way out, as every answer's (vmdeck.api.hostpaths).
    pid = (vm.get("process") or {}).get("pid")
    cmdline = cmdline_options(qemu_cmdline(pid)) if pid else []
    return {**chart_view(vm), "cmdline": cmdline, "detail": vm, "host": snapshot["host"] if whole_host else None,
            "collect_ms": snapshot["collect_ms"], "taken_at_epoch_s": snapshot["taken_at_epoch_s"]}


@router.get("/api/hostview")
def hostview_all(request: Request, host: Host = Depends(request_host)) -> dict[str, Any]:
    """Every running VM from the host, with the host's overcommit and memory features."""
    return _collector(request, host, "*").snapshot().to_dict()

"""GET /metrics in Prometheus text format, the history API and the live figures for `vmdeck top` (api layer).

Everything is answered from the metrics feed's memory (vmdeck.metrics.sampler: one bulk libvirt
sample per interval), never with a libvirt call per request. Who sees what: an administrator every
VM, the host and every project's quota; anyone else (a project member's session or token, a token
with the "metrics" scope) the VMs and quotas of their own projects only. A VM of another project is
left out, its name included.

Metric names follow the libvirt exporters (prometheus-libvirt-exporter) so existing dashboards and
alerts keep working; labels: domain, project ("" for VMs vmdeck did not create), host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Query, Response
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from vmdeck.api.context import AppContext, app_context, quota_hosts
from vmdeck.api.errors import Unauthorized
from vmdeck.api.policy import Grant, grant_of, visible
from vmdeck.errors import HostError, NotFound
from vmdeck.metrics.history import HistoryStore
from vmdeck.metrics.rates import Rates
from vmdeck.metrics.sample import VmCounters
from vmdeck.metrics.sampler import Latest, Sampler
from vmdeck.metrics.thresholds import POOL_FULL_RATIO, disk_pool_full, host_overcommitted
from vmdeck.store.accounts import Principal
from vmdeck.store.quota import usage_report

__all__ = ["router", "start_feed", "MetricsFeed"]

router = APIRouter(tags=["metrics"])

VM_LABELS = ["domain", "project", "host"]


class MetricsFeed:
    """The sampler of this server's host, and the projects' quota use read at its slow pace."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.history = HistoryStore(settings.history_dir or settings.db_path.parent / "history")
        self.quotas: dict[str, dict[str, dict[str, float | None]]] = {}
        self.sampler = Sampler(ctx.host.get, "local", interval=settings.metrics_interval, history=self.history,
                               projects=self._projects, vcpu_ratio=self._vcpu_ratio,
                               detail_interval=settings.metrics_detail_interval, on_detail=self._read_quotas)

    def _projects(self) -> dict[str, str | None]:
        inventory = self.ctx.inventory
        if not inventory.live:
            return {}
        return {vm.name: vm.project for vm in inventory.summaries()}

    def _vcpu_ratio(self) -> float:
        fleet = self.ctx.fleet
        if fleet is not None:
            with contextlib.suppress(Exception):  # the registry's own table may be missing: the default
                return float(fleet.entry("local").vcpu_ratio)
        return 4.0

    def _read_quotas(self) -> None:
        host = self.ctx.host.get()
        where = quota_hosts(self.ctx, host)
        found = {}
        for project in self.ctx.tenancy.project_names():
            with contextlib.suppress(NotFound, HostError):
                found[project] = usage_report(self.ctx.accounts.db, where, project)["quota"]
        self.quotas = found

    def start(self) -> None:
        self.sampler.start()

    def stop(self) -> None:
        self.sampler.stop()


def start_feed(ctx: AppContext) -> MetricsFeed:
    feed = MetricsFeed(ctx)
    ctx.extra["metrics"] = feed
    feed.start()
    return feed


def _feed(ctx: AppContext) -> MetricsFeed:
    feed = ctx.extra.get("metrics")
    if not isinstance(feed, MetricsFeed):
        raise HostError("the metrics feed is not running (the server is starting or stopping)")
    return feed


async def _latest(ctx: AppContext) -> Latest:
    feed = _feed(ctx)
    if feed.sampler.latest is None:  # the first sample is under way: wait for it (bounded), in a thread
        await anyio.to_thread.run_sync(feed.sampler.ready.wait, 30.0)
    if feed.sampler.latest is None:
        raise HostError("no metrics sample yet (libvirtd unreachable?)")
    return feed.sampler.latest


def _principal(grant: Grant) -> Principal:
    if grant.principal is None:  # /metrics is not under /api/: the policy lets pages through unsigned
        raise Unauthorized("sign in or send an API token (Authorization: Bearer ...)")
    return grant.principal


def _visible_vms(latest: Latest, principal: Principal) -> list[VmCounters]:
    return [vm for vm in latest.sample.vms if visible(principal, vm.project)]


# --- Prometheus -----------------------------------------------------------------------------------------

class _Exposition:
    """What one scrape shows: built per request from the latest sample, filtered for the caller."""

    def __init__(self, latest: Latest, vms: list[VmCounters], quotas: dict[str, dict[str, dict[str, float | None]]],
                 admin: bool) -> None:
        self.latest, self.vms, self.quotas, self.admin = latest, vms, quotas, admin

    def collect(self) -> Iterator[Metric]:
        latest, host = self.latest, self.latest.sample.host.name
        g, c = GaugeMetricFamily, CounterMetricFamily
        vstate = g("libvirt_domain_info_vstate", "Domain state (libvirt's virDomainState: 1 running, 3 paused, "
                   "5 shut off ...)", labels=VM_LABELS)
        cpu = c("libvirt_domain_info_cpu_time_seconds_total", "CPU time the domain used, all vCPUs and QEMU",
                labels=VM_LABELS)
        vcpus = g("libvirt_domain_info_virtual_cpus", "Number of virtual CPUs", labels=VM_LABELS)
        maxmem = g("libvirt_domain_info_maximum_memory_bytes", "Maximum memory of the domain", labels=VM_LABELS)
        usage = g("libvirt_domain_info_memory_usage_bytes", "Memory the domain has now (balloon size)",
                  labels=VM_LABELS)
        dev = [*VM_LABELS, "target_device"]
        blk = {k: c(f"libvirt_domain_block_stats_{k}_total", f"Block device {k.replace('_', ' ')}", labels=dev)
               for k in ("read_bytes", "read_requests", "write_bytes", "write_requests")}
        net = {k: c(f"libvirt_domain_interface_stats_{k}_total", f"Network interface {k.replace('_', ' ')}",
                    labels=dev) for k in ("receive_bytes", "receive_packets", "transmit_bytes", "transmit_packets")}
        delay = c("vmdeck_domain_vcpu_delay_seconds_total", "Time the vCPU threads were runnable but waited "
                  "for a host CPU (run-queue delay, all vCPUs)", labels=VM_LABELS)
        rss = g("vmdeck_domain_memory_rss_bytes", "Resident memory of the QEMU process", labels=VM_LABELS)
        touched = g("vmdeck_domain_guest_ram_touched_bytes", "Guest RAM the guest has touched and the host "
                    "holds (from smaps, read every minute)", labels=VM_LABELS)
        tcg = g("vmdeck_domain_tcg_code_cache_bytes", "Resident TCG translated-code buffers (0 under KVM)",
                labels=VM_LABELS)
        cpu_pct = g("vmdeck_domain_cpu_percent", "CPU use over the last sample interval, percent of one host "
                    "CPU", labels=VM_LABELS)
        pinned = g("vmdeck_domain_cpu_pinned", "1: every vCPU busy for the last samples (a VM stuck at 100 % CPU)",
                   labels=VM_LABELS)
        pool_full = g("vmdeck_domain_block_pool_full", f"1: the disk's storage pool is over "
                      f"{POOL_FULL_RATIO * 100:.0f} % allocated", labels=dev)
        for vm in self.vms:
            lv = [vm.name, vm.project or "", host]
            vstate.add_metric(lv, vm.state_code)
            vcpus.add_metric(lv, vm.vcpus)
            maxmem.add_metric(lv, vm.maximum_memory_bytes)
            usage.add_metric(lv, vm.memory_usage_bytes)
            pinned.add_metric(lv, 1 if vm.name in latest.pinned else 0)
            if vm.cpu_time_ns is not None:
                cpu.add_metric(lv, vm.cpu_time_ns / 1e9)
            if not vm.running:
                continue
            rates = latest.vm_rates.get(vm.name, Rates())
            if rates.cpu_pct is not None:
                cpu_pct.add_metric(lv, rates.cpu_pct)
            if vm.run_delay_ns is not None:
                delay.add_metric(lv, vm.run_delay_ns / 1e9)
            if vm.rss_bytes is not None:
                rss.add_metric(lv, vm.rss_bytes)
            if vm.touched_bytes is not None:
                touched.add_metric(lv, vm.touched_bytes)
            if vm.tcg_cache_bytes is not None:
                tcg.add_metric(lv, vm.tcg_cache_bytes)
            for b in vm.blocks:
                ld = [*lv, b.device]
                for key, value in (("read_bytes", b.read_bytes), ("read_requests", b.read_requests),
                                   ("write_bytes", b.write_bytes), ("write_requests", b.write_requests)):
                    blk[key].add_metric(ld, value)
            full = {device for device, _pool in disk_pool_full(vm, latest.pools)}
            for b in vm.blocks:
                if b.path:
                    pool_full.add_metric([*lv, b.device], 1 if b.device in full else 0)
            for n in vm.nets:
                ld = [*lv, n.device]
                for key, value in (("receive_bytes", n.receive_bytes), ("receive_packets", n.receive_packets),
                                   ("transmit_bytes", n.transmit_bytes), ("transmit_packets", n.transmit_packets)):
                    net[key].add_metric(ld, value)
        yield from (vstate, cpu, vcpus, maxmem, usage, *blk.values(), *net.values(), delay, rss, touched, tcg,
                    cpu_pct, pinned, pool_full)
        limit = g("vmdeck_project_quota_limit", "A project's quota (absent: no limit)", labels=["project", "resource"])
        used = g("vmdeck_project_usage", "A project's use of a quota resource", labels=["project", "resource"])
        for project, quota in sorted(self.quotas.items()):
            for resource, figures in quota.items():
                if figures.get("limit") is not None:
                    limit.add_metric([project, resource], float(figures["limit"] or 0))
                if figures.get("used") is not None:
                    used.add_metric([project, resource], float(figures["used"] or 0))
        yield from (limit, used)
        if not self.admin:
            return  # the host is the administrators' (as the host page is)
        h = latest.sample.host
        up = g("vmdeck_host_up", "1: the last sample of the host's libvirtd succeeded", labels=["host"])
        up.add_metric([host], 1 if h.up else 0)
        alloc = g("vmdeck_host_vcpus_allocated", "vCPUs of the running VMs", labels=["host"])
        alloc.add_metric([host], h.vcpus_allocated)
        pcpus = g("vmdeck_host_cpus", "Host CPUs", labels=["host"])
        pcpus.add_metric([host], h.pcpus)
        mem = g("vmdeck_host_memory_allocated_bytes", "Maximum memory of the running VMs", labels=["host"])
        mem.add_metric([host], h.memory_allocated_bytes)
        ratio = g("vmdeck_host_vcpu_ratio_limit", "vCPUs allowed per host CPU (placement)", labels=["host"])
        ratio.add_metric([host], latest.vcpu_ratio)
        over = g("vmdeck_host_vcpu_overcommitted", "1: running vCPUs exceed host CPUs x the vCPU ratio",
                 labels=["host"])
        over.add_metric([host], 1 if host_overcommitted(h, latest.vcpu_ratio) else 0)
        pool = g("vmdeck_storage_pool_allocation_ratio", "Allocated share of a storage pool", labels=["host", "pool"])
        for p in latest.pools:
            pool.add_metric([host, p.name], round(p.ratio, 4))
        took = g("vmdeck_sample_duration_seconds", "How long the last sample of the host took", labels=["host"])
        took.add_metric([host], latest.sample.collect_ms / 1000)
        yield from (up, alloc, pcpus, mem, ratio, over, pool, took)


def render(latest: Latest, principal: Principal, quotas: dict[str, dict[str, dict[str, float | None]]]) -> bytes:
    """The text exposition for `principal` (also what the benchmark times)."""
    vms = _visible_vms(latest, principal)
    shown = {p: q for p, q in quotas.items() if principal.admin or principal.role_in(p) is not None}
    # The classic text format (0.0.4): what every Prometheus and promtool reads.
    return generate_latest(_Exposition(latest, vms, shown, principal.admin))


# The text of one sample is the same for every caller who sees the same projects: two Prometheus servers
# (an HA pair) scraping the same sample share one rendering. Keyed by the sample and what the caller sees.
_rendered: dict[tuple[int, bool, tuple[str, ...]], tuple[Latest, bytes]] = {}
_RENDERED_MAX = 16


def cached_render(latest: Latest, principal: Principal, quotas: dict[str, dict[str, dict[str, float | None]]]) -> bytes:
    key = (id(latest), principal.admin, () if principal.admin else tuple(principal.projects()))
    hit = _rendered.get(key)
    if hit is not None and hit[0] is latest:  # the same object, not an id reused after it was freed
        return hit[1]
    text = render(latest, principal, quotas)
    if len(_rendered) >= _RENDERED_MAX:
        _rendered.clear()
    _rendered[key] = (latest, text)
    return text


@router.get("/metrics", include_in_schema=False)
async def metrics(ctx: AppContext = Depends(app_context), grant: Grant = Depends(grant_of)) -> Response:
    """Prometheus text format: every VM the caller may see, quotas, and (administrators) the host."""
    principal = _principal(grant)
    latest = await _latest(ctx)
    quotas = _feed(ctx).quotas
    # A first rendering of 100 VMs takes tens of ms: in a worker thread, the event loop keeps serving.
    text = await anyio.to_thread.run_sync(cached_render, latest, principal, quotas)
    return Response(text, media_type=CONTENT_TYPE_PLAIN_0_0_4)


# --- JSON: live figures, notices, history ------------------------------------------------------------------

def vm_rows(latest: Latest, vms: list[VmCounters]) -> list[dict[str, Any]]:
    rows = []
    for vm in vms:
        rates = latest.vm_rates.get(vm.name, Rates())
        rows.append({"name": vm.name, "project": vm.project, "state_code": vm.state_code, "running": vm.running,
                     "vcpus": vm.vcpus, "memory_bytes": vm.maximum_memory_bytes, **rates.as_dict(),
                     "pinned": vm.name in latest.pinned})
    return rows


@router.get("/api/metrics/vms")
async def live_vms(ctx: AppContext = Depends(app_context), grant: Grant = Depends(grant_of)) -> dict[str, Any]:
    """The latest sample of every VM you may see: CPU %, memory, disk and network rates (`vmdeck top`)."""
    principal = _principal(grant)
    latest = await _latest(ctx)
    answer: dict[str, Any] = {"at": latest.sample.taken_at, "interval_s": _feed(ctx).sampler.interval,
                              "vms": vm_rows(latest, _visible_vms(latest, principal))}
    if principal.admin:
        h = latest.sample.host
        answer["host"] = {"name": h.name, "up": h.up, "pcpus": h.pcpus, "vcpus_allocated": h.vcpus_allocated,
                          "memory_allocated_bytes": h.memory_allocated_bytes,
                          "memory_total_bytes": h.memory_total_bytes, **latest.host_rates.as_dict()}
    return answer


@router.get("/api/metrics/notices")
async def notices(ctx: AppContext = Depends(app_context), grant: Grant = Depends(grant_of)) -> list[dict[str, Any]]:
    """Thresholds crossed now: VMs pinned at 100 % CPU, disks in nearly full pools, an overcommitted host."""
    principal = _principal(grant)
    latest = await _latest(ctx)
    return [{"kind": n.kind, "subject": n.subject, "message": n.message} for n in latest.notices
            if (n.kind == "host_vcpu_ratio" and principal.admin)
            or (n.kind != "host_vcpu_ratio" and visible(principal, n.project))]


def _range(value: str) -> str:
    from vmdeck.errors import InvalidInput
    from vmdeck.metrics.history import RANGES

    if value not in RANGES:
        raise InvalidInput(f"range: one of {', '.join(RANGES)}, not {value!r}", field="range")
    return value


@router.get("/api/vms/{name}/history")
async def vm_history(name: str, range: str = Query("1h", description="1h (10 s steps), 1d (1 min), 30d (10 min)"),
                     ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """CPU %, memory (RSS, touched), disk and network bytes/s of one VM over a range, oldest first."""
    wanted = _range(range)
    await _latest(ctx)
    feed = _feed(ctx)
    # Files are kept by the VM's UUID: a VM deleted and made again under its name (maybe by another
    # project) starts a history of its own.
    key = feed.sampler.history_key(name)
    series = await anyio.to_thread.run_sync(feed.history.read, "vm", key, wanted) if key is not None else None
    if series is None:
        return {"range": wanted, "step_s": None, "fields": [], "points": []}
    return series.to_dict()


@router.get("/api/host/history")
async def host_history(range: str = Query("1h", description="1h (10 s steps), 1d (1 min), 30d (10 min)"),
                       ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """The host's line: CPU % (100 per busy host CPU) and its VMs' memory, disk and network added up."""
    wanted = _range(range)
    feed = _feed(ctx)
    series = await anyio.to_thread.run_sync(feed.history.read, "host", feed.sampler.host_name, wanted)
    if series is None:
        return {"range": wanted, "step_s": None, "fields": [], "points": []}
    return series.to_dict()


"""The server's metrics feed: a thread takes one sample per interval, keeps the latest with its rates,
writes history and works out the thresholds (core layer).

A scrape of /metrics, `vmdeck top` and the charts read what this thread last stored: no libvirt call
per scrape, so 10 Prometheus servers scraping every second cost what one sample every 10 s costs.
Storage pools' fill (for the disk threshold) is read at the slower `detail_interval`, as are the
smaps figures (guest RAM touched, TCG code cache).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vmdeck.domxml.storage import pool_target_path
from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.metrics.history import HistoryStore
from vmdeck.metrics.rates import Rates, sample_rates
from vmdeck.metrics.sample import HostFigures, Sample, take_sample
from vmdeck.metrics.thresholds import PINNED_SAMPLES, Notice, PoolUsage, notices

__all__ = ["Latest", "Sampler", "read_pools"]

log = logging.getLogger("vmdeck.metrics")


@dataclass(frozen=True)
class Latest:
    """What the last sample found, with its rates and notices: replaced whole, never changed in place."""

    sample: Sample
    vm_rates: dict[str, Rates]
    host_rates: Rates
    pools: tuple[PoolUsage, ...] = ()
    notices: tuple[Notice, ...] = ()
    vcpu_ratio: float = 4.0
    pinned: frozenset[str] = field(default_factory=frozenset)


def read_pools(host: Host) -> tuple[PoolUsage, ...]:
    """Capacity and allocation of every running storage pool (dir pools: those with a target folder)."""
    found = []
    for pool in host.conn.active_pools():
        with contextlib.suppress(VmdeckError, ValueError):
            capacity, allocation = pool.usage()
            found.append(PoolUsage(pool.name, pool_target_path(pool.xml()), capacity, allocation))
    return tuple(found)


class Sampler:
    def __init__(self, get_host: Callable[[], Host], host_name: str = "local", *, interval: float = 10.0,
                 history: HistoryStore | None = None, projects: Callable[[], dict[str, str | None]] | None = None,
                 vcpu_ratio: Callable[[], float] | None = None, detail_interval: float = 60.0,
                 on_detail: Callable[[], None] | None = None) -> None:
        self._get_host = get_host
        self.host_name = host_name
        self.interval = interval
        self.detail_interval = max(detail_interval, interval)
        self.history = history
        self._projects = projects
        self._vcpu_ratio = vcpu_ratio or (lambda: 4.0)
        self._on_detail = on_detail  # the server's slow-pace extras (quota usage), run in this thread
        self.latest: Latest | None = None
        self.samples = 0
        self._cpu: dict[str, collections.deque[float | None]] = {}
        self._pools: tuple[PoolUsage, ...] = ()
        self._detail_at = 0.0
        self._prune_at = 0.0
        self._pcpus: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # set after the first sample (or the first failure)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vmdeck-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.history is not None:
            # The thread may be mid-write: closing its files under it would fail that write, not corrupt.
            if self._thread is not None:
                self._thread.join(timeout=5.0)
            self.history.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.sample_once()
            except VmdeckError as err:  # libvirtd away: the host is down until a sample succeeds again
                log.warning("metrics sample failed: %s", err)
                self._mark_down()
            except Exception:  # a bug must not end the feed for the server's lifetime
                log.exception("metrics sample failed")
            self.ready.set()
            self._stop.wait(max(0.5, self.interval - (time.monotonic() - started)))

    def _mark_down(self) -> None:
        latest = self.latest
        if latest is None:
            figures = HostFigures(self.host_name, False, self._pcpus or 0, None, 0, 0)
            self.latest = Latest(Sample(time.time(), time.monotonic(), figures), {}, Rates())
            return
        host = HostFigures(**{**latest.sample.host.__dict__, "up": False})
        sample = Sample(latest.sample.taken_at, latest.sample.monotonic, host, latest.sample.vms,
                        latest.sample.collect_ms)
        self.latest = Latest(sample, latest.vm_rates, latest.host_rates, latest.pools, latest.notices,
                             latest.vcpu_ratio, latest.pinned)

    def sample_once(self) -> Latest:
        host = self._get_host()
        now = time.monotonic()
        detail = now >= self._detail_at
        if self._pcpus is None:
            self._pcpus = host.conn.info()[2]
        previous = self.latest.sample if self.latest is not None and self.latest.sample.host.up else None
        sample = take_sample(host, self.host_name, projects=self._projects, detail=detail, previous=previous,
                             pcpus=self._pcpus)
        if detail:
            self._detail_at = now + self.detail_interval
            with contextlib.suppress(VmdeckError):
                self._pools = read_pools(host)
            if self._on_detail is not None:
                try:
                    self._on_detail()
                except VmdeckError as err:
                    log.warning("metrics extras failed: %s", err)
        vm_rates, host_rates = sample_rates(sample, previous)
        names = {vm.name for vm in sample.vms}
        self._cpu = {name: self._cpu.get(name) or collections.deque(maxlen=PINNED_SAMPLES) for name in names}
        for vm in sample.vms:
            self._cpu[vm.name].append(vm_rates[vm.name].cpu_pct if vm.running else None)
        ratio = self._vcpu_ratio()
        found = notices(sample.vms, self._cpu, self._pools, sample.host, ratio)
        pinned = frozenset(n.subject for n in found if n.kind == "cpu_pinned")
        latest = Latest(sample, vm_rates, host_rates, self._pools, tuple(found), ratio, pinned)
        self.latest = latest
        self.samples += 1
        if self.history is not None:
            self._record(latest, now)
        return latest

    def history_key(self, name: str) -> str | None:
        """The history file key of VM `name` now (its UUID), None when the last sample has no such VM."""
        latest = self.latest
        if latest is None:
            return None
        return next((vm.uuid or vm.name for vm in latest.sample.vms if vm.name == name), None)

    def _record(self, latest: Latest, now: float) -> None:
        assert self.history is not None
        at = latest.sample.taken_at
        try:
            for vm in latest.sample.vms:
                if vm.running:
                    self.history.record("vm", vm.uuid or vm.name, at, latest.vm_rates[vm.name].values())
            self.history.record("host", self.host_name, at, latest.host_rates.values())
            if now >= self._prune_at:
                self._prune_at = now + 3600
                self.history.prune({vm.uuid or vm.name for vm in latest.sample.vms})
        except OSError as err:  # a full disk stops history, not the live figures
            log.warning("writing metrics history failed: %s", err)

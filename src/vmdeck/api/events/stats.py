"""The sparklines' samples: CPU, memory, uptime and addresses of every VM, and the host's (api layer).

One bulk query per interval (getAllDomainStats through vmdeck.vm.inventory, or the inventory's
own bulk refresh, or one per registered host), made only while someone watches. CPU percent
is the difference of two samples' CPU time, so it is given only for VMs that may be sampled
(running or paused, VmState.may_sample) and twice in a row: a VM that stopped shows no CPU
rather than the last figure it had. Uptime comes from /proc (local hosts), addresses from the
background poller (vmdeck.api.events.addresses).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import anyio

from vmdeck.api.context import HostHandle
from vmdeck.api.events.addresses import AddressPoller
from vmdeck.api.events.messages import HostSample, StatsSample, VmSample
from vmdeck.api.inventory import Inventory
from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.inventory import list_everywhere
from vmdeck.errors import VmdeckError
from vmdeck.hostview.node import NodeSample, cpu_percent, node_sample
from vmdeck.vm.inventory import VmSummary, list_vms
from vmdeck.vm.runtime import uptime_s
from vmdeck.vm.state import to_state

__all__ = ["StatsSampler"]


class StatsSampler:
    """An asyncio task: every `interval` seconds while `watching()`, one StatsSample to `publish`."""

    def __init__(self, handle: HostHandle, interval: float, inventory: Inventory | None,
                 fleet: Callable[[], Fleet | None], watching: Callable[[], bool],
                 publish: Callable[[StatsSample], None], projects: dict[str, str | None]) -> None:
        self.handle = handle
        self.interval = interval
        self.inventory = inventory
        self.fleet = fleet
        self.watching = watching
        self.publish = publish
        self.projects = projects  # VM name -> project, shared with the event worker
        self.addresses = AddressPoller(handle.get)
        self._previous: dict[str, tuple[int, float]] = {}  # VM -> (CPU time ns, when)
        self._last_node: NodeSample | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.addresses.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.watching():
                self._previous.clear()  # a rate across minutes of nobody watching means nothing
                continue
            summaries = await self._summaries()
            if summaries is not None:
                self.publish(await self.sample(summaries))

    async def _summaries(self) -> list[VmSummary] | None:
        fleet = self.fleet()
        try:
            if fleet is not None:
                return (await anyio.to_thread.run_sync(list_everywhere, fleet)).vms
            if self.inventory is not None and self.inventory.live:
                return self.inventory.summaries()  # refreshed in bulk by the inventory itself
            return await anyio.to_thread.run_sync(lambda: list_vms(self.handle.get()))
        except VmdeckError:
            return None

    async def sample(self, summaries: list[VmSummary]) -> StatsSample:
        try:
            uptimes, node = await anyio.to_thread.run_sync(lambda: self._runtime(summaries))
        except VmdeckError:
            uptimes, node = {}, None
        self.addresses.refresh(summaries)
        now = time.monotonic()
        vms: dict[str, VmSample] = {}
        for vm in summaries:
            vms[vm.name] = VmSample(cpu_pct=self._cpu_pct(vm, now), rss_mib=vm.rss_kib / 1024 if vm.rss_kib else None,
                                    uptime_s=uptimes.get(vm.name), addresses=self.addresses.known(vm.name))
            self.projects[vm.name] = vm.project
        host = HostSample(cpu_pct=cpu_percent(self._last_node, node) if self._last_node and node else None,
                          memory_used_mib=node.memory_used_mib if node else None,
                          memory_total_mib=node.memory_total_mib if node else None)
        self._last_node = node
        return StatsSample(at=time.time(), vms=vms, host=host, projects={vm.name: vm.project for vm in summaries})

    def _cpu_pct(self, vm: VmSummary, now: float) -> float | None:
        if vm.cpu_time_ns is None or not to_state(vm.state).may_sample:
            self._previous.pop(vm.name, None)
            return None
        previous = self._previous.get(vm.name)
        self._previous[vm.name] = (vm.cpu_time_ns, now)
        if previous is None or now <= previous[1]:
            return None
        last_ns, last_at = previous
        # Percent of one host CPU, as top shows a process: 2 busy vCPUs read 200.
        return max(0.0, (vm.cpu_time_ns - last_ns) / 1e9 / (now - last_at) * 100)

    def _runtime(self, summaries: list[VmSummary]) -> tuple[dict[str, float | None], NodeSample | None]:
        """Uptimes of the VMs with a QEMU process (/proc, cheap) and the host's CPU and memory statistics."""
        host = self.handle.get()
        uptimes = {vm.name: uptime_s(host, vm.name) for vm in summaries if to_state(vm.state).active}
        node = None
        with contextlib.suppress(VmdeckError):
            node = node_sample(host)
        return uptimes, node

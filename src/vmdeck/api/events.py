"""The live event stream: libvirt's event API pushed to browsers over a WebSocket (api layer).

libvirt calls back when a domain starts, stops, pauses, is defined ... (no
polling): a daemon thread runs libvirt's default event loop implementation and
the callbacks hand each event to every connected browser's asyncio queue.
CPU and memory samples for the sparklines are one bulk getAllDomainStats call
per interval, made only while someone is watching; each running VM's uptime rides
along (from /proc, local hosts only), and its guest addresses, asked of the agent
at a slower pace in the background so a silent agent never delays a sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from vmdeck.api.inventory import Inventory
from vmdeck.api.policy import visible
from vmdeck.api.revocation import Watch, no_narrower
from vmdeck.api.security import origin_allowed
from vmdeck.cluster.inventory import list_everywhere
from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.events import ensure_event_loop
from vmdeck.host.libvirt_api import Domain
from vmdeck.hostview.node import NodeSample, cpu_percent, node_sample
from vmdeck.store.accounts import Principal
from vmdeck.vm.inventory import VmSummary, list_vms
from vmdeck.vm.project import domain_project
from vmdeck.vm.runtime import guest_addresses, uptime_s
from vmdeck.vm.state import allowed_actions

__all__ = ["ensure_event_loop", "EventHub", "router"]

log = logging.getLogger("vmdeck.api.events")

# Guest addresses change rarely and cost an agent round trip per VM: asked this often at most.
ADDRESS_INTERVAL_S = 30.0



# The state a VM is in after each lifecycle event (None: the event says nothing about it).
_STATE_AFTER: dict[str, str | None] = {
    "defined": None,
    "undefined": None,
    "started": "running",
    "suspended": "paused",
    "resumed": "running",
    "stopped": "shut off",
    "shutdown": "shutting down",
    "pmsuspended": "suspended",
    "crashed": "crashed",
}


class EventHub:
    """Fans libvirt domain events out to subscribers (one asyncio queue per browser)."""

    def __init__(self, host: Any, stats_interval: float, inventory: Inventory | None = None,
                 ctx: Any = None) -> None:
        self.inventory = inventory
        # vmdeck.api.context.AppContext: with several hosts registered, each remote host's events are
        # relayed too, tagged with its name (the local host's come through `host`, as before).
        self.ctx = ctx
        self._remote: dict[str, tuple[Host, int]] = {}  # host name -> (connection, callback id)
        self.host_handle = host  # vmdeck.api.context.HostHandle, for the stats samples
        self.stats_interval = stats_interval
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = set()
        self._lock = threading.Lock()
        self._register_lock = threading.Lock()
        self._conn_host: Host | None = None
        self._callback_ids: list[int] = []
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self.events_seen = 0
        # VM name -> project, kept from events and samples: an "undefined" VM has no metadata left to read.
        self._projects: dict[str, str | None] = {}
        self._addresses: dict[str, list[str]] = {}
        self._addresses_at = 0.0
        self._addresses_task: asyncio.Task[None] | None = None
        # Called with a local VM's name when it starts (vmdeck.api.forward_watch: its port forwards).
        self.on_started: list[Callable[[str], None]] = []

    # --- libvirt side (event-loop thread) ------------------------------------------------------------
    def start(self) -> None:
        ensure_event_loop()
        on_connect = getattr(self.host_handle, "on_connect", None)
        if on_connect is not None:
            on_connect.append(self._register_on)
        # libvirtd down (or, in tests, another app holding this connection's callback): the watchdog retries.
        with contextlib.suppress(VmdeckError):
            self._register()
        self._register_fleet()
        self._watchdog = threading.Thread(target=self._watch, name="vmdeck-events-watchdog", daemon=True)
        self._watchdog.start()
        self._stats_task = asyncio.get_running_loop().create_task(self._sample_stats())

    def _register(self) -> None:
        # Events ride on the same connection the requests use: libvirt's test driver gives every
        # connection its own fake host, and on a real host one connection is one less socket.
        self._register_on(self.host_handle.get())

    def _register_on(self, host: Host) -> None:
        with self._register_lock:
            if host is self._conn_host:
                return
            self._callback_ids = [host.conn.on_lifecycle(self._on_lifecycle)]
            # Changes that leave the state alone but change what `show` says: the inventory drops its view.
            self._callback_ids += host.conn.on_device_change(self._on_device_change)
            reconnected = self._conn_host is not None
            self._conn_host = host
        # Outside the lock: a resync talks to libvirt, which may reconnect and call us back.
        if self.inventory is not None:
            self.inventory.resync()
        if reconnected:
            self.publish({"type": "inventory", "reason": "reconnected"})

    def _watch(self) -> None:
        # libvirtd may restart under us: the handle reconnects (here, or for the next request, whichever
        # comes first), registers us on the new connection and browsers re-read the list.
        while not self._stop.wait(1.0):
            with contextlib.suppress(VmdeckError):
                self._register()
            self._register_fleet()

    def _fleet(self) -> Any:
        from vmdeck.api.context import fleet_of

        return fleet_of(self.ctx) if self.ctx is not None else None

    def _register_fleet(self) -> None:
        fleet = self._fleet()
        if fleet is None:
            return
        remote = [e for e in fleet.entries if e.uri is not None]
        # Every remote host at once, under one short deadline: one silent host never delays the others.
        fleet.each(lambda host, entry: self._register_remote(entry.name, host), deadline=2.0, entries=remote)

    def _register_remote(self, name: str, host: Host) -> None:
        with self._register_lock:
            known = self._remote.get(name)
            if known is not None and known[0] is host:
                return

            def relay(dom: Domain, event: str, detail: int) -> None:
                self._on_lifecycle(dom, event, detail, name)

            self._remote[name] = (host, host.conn.on_lifecycle(relay))
        if known is not None:
            self.publish({"type": "inventory", "reason": "reconnected", "host": name})

    def _on_lifecycle(self, dom: Domain, event: str, detail: int, host_name: str = "local") -> None:
        self.events_seen += 1
        state = _STATE_AFTER.get(event)
        if self.inventory is not None and host_name == "local":
            self.inventory.on_event(dom.name, state)
        if event != "undefined":  # an undefined VM has no metadata left: its last known project is kept
            self._projects[dom.name] = domain_project(dom)
        message: dict[str, Any] = {"type": "state", "vm": dom.name, "event": event, "detail": detail,
                                   "state": state, "at": time.time(), "host": host_name,
                                   "project": self._projects.get(dom.name)}
        if state is not None:
            message["allowed_actions"] = allowed_actions(state)
        if event in ("defined", "undefined"):
            message["type"] = "inventory"
        self.publish(message)
        if event == "started" and host_name == "local":
            for started in self.on_started:
                started(dom.name)

    def _on_device_change(self, dom: Domain) -> None:
        if self.inventory is not None:
            self.inventory.on_event(dom.name)
        with contextlib.suppress(VmdeckError):  # a metadata change may have moved the VM to another project
            self._projects[dom.name] = domain_project(dom)
        # Open VM pages re-read its disks and media (a CD inserted or a disk removed from the CLI).
        self.publish({"type": "device", "vm": dom.name, "at": time.time(), "host": "local",
                      "project": self._projects.get(dom.name)})

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(AttributeError, ValueError):
            self.host_handle.on_connect.remove(self._register_on)
        if self._stats_task is not None:
            self._stats_task.cancel()
        if self._addresses_task is not None:
            self._addresses_task.cancel()
        host = self._conn_host
        if host is not None:
            for callback_id in self._callback_ids:
                host.conn.remove_callback(callback_id)
            host.close()
        for remote, callback_id in self._remote.values():
            remote.conn.remove_callback(callback_id)
        self._remote.clear()

    # --- asyncio side ----------------------------------------------------------------------------------
    def publish(self, message: dict[str, Any]) -> None:
        """Thread-safe: queue `message` for every subscriber on its own event loop."""
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            with contextlib.suppress(RuntimeError):  # that loop is closing
                loop.call_soon_threadsafe(_put_dropping_oldest, queue, message)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=256)
        with self._lock:
            self._subscribers.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._subscribers = {(loop, q) for loop, q in self._subscribers if q is not queue}

    @property
    def watching(self) -> int:
        return len(self._subscribers)

    async def _sample_stats(self) -> None:
        previous: dict[str, tuple[int, float]] = {}
        last_node: NodeSample | None = None
        while True:
            await asyncio.sleep(self.stats_interval)
            if not self._subscribers:
                previous.clear()
                continue
            fleet = self._fleet()
            if fleet is not None:
                try:
                    summaries = (await anyio.to_thread.run_sync(list_everywhere, fleet)).vms
                except VmdeckError:
                    continue
            elif self.inventory is not None and self.inventory.live:
                summaries = self.inventory.summaries()  # refreshed in bulk by the inventory itself
            else:
                try:
                    summaries = await anyio.to_thread.run_sync(lambda: list_vms(self.host_handle.get()))
                except VmdeckError:
                    continue
            try:
                uptimes, node = await anyio.to_thread.run_sync(lambda: self._runtime(summaries))
            except VmdeckError:
                uptimes, node = {}, None
            self._maybe_refresh_addresses(summaries)
            now = time.monotonic()
            sample: dict[str, dict[str, Any]] = {}
            for vm in summaries:
                cpu_pct = None
                if vm.cpu_time_ns is not None and vm.name in previous:
                    last_ns, last_at = previous[vm.name]
                    # Percent of one host CPU, as top shows a process: 2 busy vCPUs read 200.
                    cpu_pct = max(0.0, (vm.cpu_time_ns - last_ns) / 1e9 / (now - last_at) * 100)
                if vm.cpu_time_ns is not None:
                    previous[vm.name] = (vm.cpu_time_ns, now)
                rss = vm.rss_kib / 1024 if vm.rss_kib else None
                sample[vm.name] = {"cpu_pct": cpu_pct, "rss_mib": rss, "uptime_s": uptimes.get(vm.name),
                                   "addresses": self._addresses.get(vm.name, [])}
                self._projects[vm.name] = vm.project
            host_sample: dict[str, float | None] = {
                "cpu_pct": cpu_percent(last_node, node) if last_node and node else None,
                "memory_used_mib": node.memory_used_mib if node else None,
                "memory_total_mib": node.memory_total_mib if node else None}
            last_node = node
            # "_projects" is for the per-subscriber filter (for_principal), which removes it, and the
            # host-wide figures too for anyone but an administrator.
            self.publish({"type": "stats", "at": time.time(), "vms": sample, "host": host_sample,
                          "_projects": {vm.name: vm.project for vm in summaries}})


    def _runtime(self, summaries: list[VmSummary]) -> tuple[dict[str, float | None], NodeSample | None]:
        """Uptimes of the running VMs (/proc, cheap) and the host's CPU and memory statistics."""
        host = self.host_handle.get()
        uptimes = {vm.name: uptime_s(host, vm.name) for vm in summaries if vm.state in ("running", "paused")}
        node = None
        with contextlib.suppress(VmdeckError):
            node = node_sample(host)
        return uptimes, node

    def _maybe_refresh_addresses(self, summaries: list[VmSummary]) -> None:
        running = [vm.name for vm in summaries if vm.state == "running"]
        self._addresses = {name: found for name, found in self._addresses.items() if name in running}
        busy = self._addresses_task is not None and not self._addresses_task.done()
        if busy or not running or time.monotonic() - self._addresses_at < ADDRESS_INTERVAL_S:
            return
        self._addresses_at = time.monotonic()

        def ask() -> dict[str, list[str]]:
            host = self.host_handle.get()
            found: dict[str, list[str]] = {}
            for name in running:
                with contextlib.suppress(VmdeckError):
                    found[name] = list(guest_addresses(host, name).addresses)
            return found

        async def refresh() -> None:
            with contextlib.suppress(VmdeckError):
                self._addresses.update(await anyio.to_thread.run_sync(ask))

        self._addresses_task = asyncio.get_running_loop().create_task(refresh())


def _put_dropping_oldest(queue: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
    # A stalled browser must not make the server hold unbounded history: it loses the oldest messages.
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(message)


def for_principal(principal: Principal, message: dict[str, Any]) -> dict[str, Any] | None:
    """What of `message` the caller may see: only their projects' VMs (administrators: all), else nothing."""
    if message.get("type") == "stats":
        projects = message.get("_projects", {})
        vms = {n: v for n, v in message["vms"].items() if visible(principal, projects.get(n))}
        shown: dict[str, Any] = {"type": "stats", "at": message["at"], "vms": vms}
        if principal.admin and "host" in message:  # host-wide figures: the host page is the administrators'
            shown["host"] = message["host"]
        return shown if vms or "host" in shown else None
    if principal.admin:
        return message
    if "vm" in message:
        return message if visible(principal, message.get("project")) else None
    return message  # hello, reconnected: about no VM


router = APIRouter()


@router.websocket("/api/events")
async def event_stream(websocket: WebSocket) -> None:
    """State changes as JSON messages: {"type": "state", "vm", "state", "allowed_actions", "event"},
    "inventory", "stats"."""
    principal = websocket.scope.get("state", {}).get("principal")
    ctx = websocket.app.state.ctx
    headers = {k.lower(): v for k, v in websocket.headers.items()}
    if principal is None or not origin_allowed(headers, websocket.scope, ctx.settings.extra_origins):
        await websocket.close(code=1008)
        return
    hub: EventHub | None = ctx.events
    if hub is None:
        await websocket.close(code=1011, reason="event stream not running")
        return
    queue = hub.subscribe()
    await websocket.accept()
    # The stream shows what the caller's roles allowed when it opened: it ends when they narrow.
    watch = Watch(websocket, no_narrower(principal))
    try:
        await websocket.send_json({"type": "hello", "user": principal.username})

        async def forward() -> None:
            while True:
                message = for_principal(principal, await queue.get())
                if message is not None:
                    await websocket.send_json(message)

        async def drain() -> None:
            # Browsers send nothing; reading notices when they leave.
            while True:
                await websocket.receive_text()

        async with anyio.create_task_group() as tasks:
            async def first(fn):  # type: ignore[no-untyped-def]
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    await fn()
                tasks.cancel_scope.cancel()

            tasks.start_soon(first, forward)
            tasks.start_soon(first, drain)
            tasks.start_soon(first, watch)
        if watch.revoked:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close(code=watch.close_code, reason=watch.close_reason)
    finally:
        hub.unsubscribe(queue)

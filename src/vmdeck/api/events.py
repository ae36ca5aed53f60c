"""The live event stream: libvirt's event API pushed to browsers over a WebSocket (api layer).

libvirt calls back when a domain starts, stops, pauses, is defined ... (no
polling): a daemon thread runs libvirt's default event loop implementation and
the callbacks hand each event to every connected browser's asyncio queue.
CPU and memory samples for the sparklines are one bulk getAllDomainStats call
per interval, made only while someone is watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from vmdeck.api.security import origin_allowed
from vmdeck.cluster.inventory import list_everywhere
from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.events import ensure_event_loop
from vmdeck.host.libvirt_api import Domain
from vmdeck.vm.inventory import list_vms
from vmdeck.vm.state import allowed_actions

__all__ = ["ensure_event_loop", "EventHub", "router"]

log = logging.getLogger("vmdeck.api.events")



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
    """Fans libvirt domain events of every registered host out to subscribers (one asyncio queue per browser).

    Each host's events arrive on that host's own connection (one callback per connection, tagged with
    the host's name); a host that is down is retried by the watchdog and never delays the others.
    """

    def __init__(self, ctx: Any, stats_interval: float) -> None:
        self.ctx = ctx  # vmdeck.api.context.AppContext: its HostHandle, or its fleet of registered hosts
        self.stats_interval = stats_interval
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = set()
        self._lock = threading.Lock()
        self._registered: dict[str, tuple[Host, int]] = {}  # host name -> (connection, callback id)
        self._register_lock = threading.Lock()  # the watchdog registers hosts from one thread each
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self.events_seen = 0

    # --- libvirt side (event-loop thread) ------------------------------------------------------------
    def start(self) -> None:
        ensure_event_loop()
        # libvirtd down (or, in tests, another app holding this connection's callback): the watchdog retries.
        self._register_all()
        self._watchdog = threading.Thread(target=self._watch, name="vmdeck-events-watchdog", daemon=True)
        self._watchdog.start()
        self._stats_task = asyncio.get_running_loop().create_task(self._sample_stats())

    def _register_all(self) -> None:
        from vmdeck.api.context import fleet_of

        fleet = fleet_of(self.ctx)
        if fleet is None:
            with contextlib.suppress(VmdeckError):
                self._register("local", self.ctx.host.get())
            return
        # Every host at once, under one short deadline: the watchdog is back in 2 s, and one silent
        # host must not hold up the others (its answer simply arrives on a later pass).
        fleet.each(lambda host, entry: self._register(entry.name, host), deadline=2.0)

    def _register(self, name: str, host: Host) -> None:
        # Events ride on the same connection the requests use: libvirt's test driver gives every
        # connection its own fake host, and on a real host one connection is one less socket.
        with self._register_lock:
            known = self._registered.get(name)
            if known is not None and known[0] is host:
                return

            def relay(dom: Domain, event: str, detail: int) -> None:
                self._on_lifecycle(dom, event, detail, name)

            self._registered[name] = (host, host.conn.on_lifecycle(relay))
        if known is not None:
            self.publish({"type": "inventory", "reason": "reconnected", "host": name})

    def _watch(self) -> None:
        # libvirtd may restart under us: the handle reconnects, we re-register and browsers re-read the list.
        while not self._stop.wait(2.0):
            self._register_all()

    def _on_lifecycle(self, dom: Domain, event: str, detail: int, host_name: str = "local") -> None:
        self.events_seen += 1
        state = _STATE_AFTER.get(event)
        message: dict[str, Any] = {"type": "state", "vm": dom.name, "event": event, "detail": detail,
                                   "state": state, "at": time.time(), "host": host_name}
        if state is not None:
            message["allowed_actions"] = allowed_actions(state)
        if event in ("defined", "undefined"):
            message["type"] = "inventory"
        self.publish(message)

    def stop(self) -> None:
        self._stop.set()
        if self._stats_task is not None:
            self._stats_task.cancel()
        with self._register_lock:
            for host, callback_id in self._registered.values():
                host.conn.remove_callback(callback_id)
            self._registered.clear()

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

    def _list_vms(self) -> list[Any]:
        from vmdeck.api.context import fleet_of

        fleet = fleet_of(self.ctx)
        return list_vms(self.ctx.host.get()) if fleet is None else list_everywhere(fleet).vms

    async def _sample_stats(self) -> None:
        previous: dict[str, tuple[int, float]] = {}
        while True:
            await asyncio.sleep(self.stats_interval)
            if not self._subscribers:
                previous.clear()
                continue
            try:
                summaries = await anyio.to_thread.run_sync(self._list_vms)
            except VmdeckError:
                continue
            now = time.monotonic()
            sample: dict[str, dict[str, float | None]] = {}
            for vm in summaries:
                cpu_pct = None
                if vm.cpu_time_ns is not None and vm.name in previous:
                    last_ns, last_at = previous[vm.name]
                    # Percent of one host CPU, as top shows a process: 2 busy vCPUs read 200.
                    cpu_pct = max(0.0, (vm.cpu_time_ns - last_ns) / 1e9 / (now - last_at) * 100)
                if vm.cpu_time_ns is not None:
                    previous[vm.name] = (vm.cpu_time_ns, now)
                rss = vm.rss_kib / 1024 if vm.rss_kib else None
                sample[vm.name] = {"cpu_pct": cpu_pct, "rss_mib": rss}
            self.publish({"type": "stats", "at": time.time(), "vms": sample})


def _put_dropping_oldest(queue: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
    # A stalled browser must not make the server hold unbounded history: it loses the oldest messages.
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(message)


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
    try:
        await websocket.send_json({"type": "hello", "user": principal.username})

        async def forward() -> None:
            while True:
                await websocket.send_json(await queue.get())

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
    finally:
        hub.unsubscribe(queue)

"""The server's picture of every VM, kept current by libvirt's events: list and show answer from memory (api layer).

Without it each GET /api/vms made bulk libvirt calls and each show parsed the domain XML, in worker
threads that 20 clients queued for (docs/PERFORMANCE.md: 156 ms p50 for a 24 ms call). Here:
- a refresher thread keeps the summaries: one bulk getAllDomainStats at start and every
  `interval` seconds (CPU time and RSS drift without events), plus, as soon as libvirt reports an
  event for a VM (started, stopped, defined, undefined, device added, media changed ... also when
  made by virsh or virt-manager), a refresh of that one VM;
- a VM's details (the show view) are computed once, in a bounded thread pool, and dropped when an
  event or a write through the API touches that VM;
- writes through the API refresh the VM before they answer (`refresh_vm`), so a client sees its own
  change in the very next list, without waiting for the event.
The event loop never calls libvirt: it reads memory, or awaits a worker thread (at most
`max_threads` at once, so a slow libvirtd cannot take every thread of the server).
Entries are plain data (VmSummary) keyed by name; several hosts or projects add fields to the entry,
not new caches.
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

from vmdeck.errors import HostError, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.vm.inventory import VmSummary, list_vms, show_vm, summarize_vm, with_state

__all__ = ["Inventory", "Entry"]

log = logging.getLogger("vmdeck.api.inventory")


@dataclass
class Entry:
    """What the server knows about one VM. `details` is the show view, None until someone asks."""

    summary: VmSummary
    details: dict[str, Any] | None = None
    details_json: bytes | None = None  # the show answer, serialized once per change
    generation: int = 0  # bumped by every change: details computed before a change are not kept
    labels: dict[str, str] = field(default_factory=dict)  # room for project, host ... (tenancy, several hosts)


class Inventory:
    def __init__(self, get_host: Callable[[], Host], interval: float = 5.0, max_threads: int = 4) -> None:
        self._get_host = get_host
        self.interval = interval
        self.max_threads = max_threads
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._full_refresh_due = True
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._list_json: bytes | None = None  # the list answer, serialized once per change
        self.refreshes = 0  # full bulk refreshes made (tests, diagnostics)

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the refresher; call from the server's event loop (the thread limiter belongs to it)."""
        self._limiter = anyio.CapacityLimiter(self.max_threads)
        self._thread = threading.Thread(target=self._run, name="vmdeck-inventory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def live(self) -> bool:
        """True while the refresher runs: reads come from memory."""
        return self._thread is not None and self._thread.is_alive()

    # --- fed by libvirt's events (any thread) ----------------------------------------------------
    def on_event(self, name: str, state: str | None = None, *, gone: bool = False) -> None:
        """A VM changed: apply what the event says at once, then refresh it from libvirt."""
        with self._lock:
            entry = self._entries.get(name)
            if gone:
                self._entries.pop(name, None)
            elif entry is not None:
                entry.generation += 1
                entry.details = entry.details_json = None
                if state is not None and state != entry.summary.state:
                    entry.summary = with_state(entry.summary, state)
            if not gone:
                self._dirty.add(name)
            self._list_json = None
        self._wake.set()

    def resync(self) -> None:
        """libvirtd reconnected (events may have been missed): reload everything."""
        self._full_refresh_due = True
        self._wake.set()

    # --- blocking (worker threads) ---------------------------------------------------------------
    def refresh_all(self) -> None:
        summaries = list_vms(self._get_host())
        with self._lock:
            old = self._entries
            self._entries = {}
            for summary in summaries:
                entry = old.get(summary.name)
                if entry is not None and entry.summary.state == summary.state:
                    entry.summary = summary  # fresh CPU time and RSS; the details stay valid
                else:
                    entry = Entry(summary, generation=entry.generation + 1 if entry else 0,
                                  labels=entry.labels if entry else {})
                self._entries[summary.name] = entry
            self._list_json = None
        self.refreshes += 1
        self._loaded.set()

    def refresh_vm(self, name: str) -> None:
        """Re-read one VM (after a write or an event); a VM that is gone leaves the inventory."""
        try:
            summary = summarize_vm(self._get_host(), name)
        except NotFound:
            self.forget(name)
            return
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                self._entries[name] = Entry(summary)
            else:
                entry.summary = summary
                entry.generation += 1
                entry.details = entry.details_json = None
            self._list_json = None

    def forget(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)
            self._dirty.discard(name)
            self._list_json = None

    def _details_blocking(self, name: str) -> dict[str, Any]:
        with self._lock:
            entry = self._entries.get(name)
            generation = entry.generation if entry else None
        details = show_vm(self._get_host(), name).to_dict()
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry.generation == generation:
                entry.details = details
                entry.details_json = _dumps(details)
        return details

    def _run(self) -> None:
        next_full = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if self._full_refresh_due or now >= next_full:
                    self._full_refresh_due = False
                    next_full = now + self.interval
                    self.refresh_all()
                    with self._lock:
                        self._dirty.clear()
                with self._lock:
                    dirty, self._dirty = self._dirty, set()
                for name in sorted(dirty):
                    self.refresh_vm(name)
            except VmdeckError as err:  # libvirtd away: keep the last picture, try again soon
                log.warning("inventory refresh failed: %s", err)
                self._full_refresh_due = True
                self._stop.wait(1.0)
            self._wake.wait(max(0.0, next_full - time.monotonic()))
            self._wake.clear()

    # --- the event loop's side -------------------------------------------------------------------
    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def list(self) -> list[VmSummary]:
        if not self.live:
            listed: builtins.list[VmSummary] = await self._in_thread(list_vms, self._get_host())
            return listed
        if not self._loaded.is_set():
            await self._in_thread(self._loaded.wait, 60.0)
            if not self._loaded.is_set():
                raise HostError("the VM inventory is not loaded yet (libvirtd unreachable?)")
        with self._lock:
            return sorted((entry.summary for entry in self._entries.values()), key=lambda s: s.name)

    async def list_json(self) -> bytes:
        """The list answer as JSON bytes, serialized once per change (20 clients do not each re-encode it)."""
        if not self.live:
            return _dumps([asdict(vm) for vm in await self.list()])
        await self.list()  # waits for the first load
        with self._lock:  # encoded under the lock: no change can slip between reading and caching
            if self._list_json is None:
                summaries = sorted((entry.summary for entry in self._entries.values()), key=lambda s: s.name)
                self._list_json = _dumps([asdict(vm) for vm in summaries])
            return self._list_json

    async def show_json(self, name: str) -> bytes:
        if self.live:
            with self._lock:
                entry = self._entries.get(name)
                if entry is not None and entry.details_json is not None:
                    return entry.details_json
        return _dumps(await self.show(name))

    def known_project(self, name: str) -> tuple[bool, str | None]:
        """(known, project) of VM `name` from memory, without waiting: known is False when the inventory
        is not live and loaded or has no such VM (the caller then asks libvirt). Kept current by the
        lifecycle and metadata-change events, and by the refresh after every write through the API."""
        if not (self.live and self._loaded.is_set()):
            return False, None
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or name in self._dirty:  # a change is on its way: do not answer from before it
                return False, None
            return True, entry.summary.project

    def summaries(self) -> builtins.list[VmSummary]:
        """What is known now, without waiting (the live stats sampler)."""
        with self._lock:
            return [entry.summary for entry in self._entries.values()]

    async def show(self, name: str) -> dict[str, Any]:
        if self.live:
            with self._lock:
                entry = self._entries.get(name)
                if entry is not None and entry.details is not None:
                    return entry.details
        details: dict[str, Any] = await self._in_thread(self._details_blocking, name)
        return details

    def after_write(self, name: str) -> None:
        """A write through the API changed `name` (blocking; the write's own worker thread): refresh it now.

        The write has happened whatever this finds: a failed refresh is left to the event and the refresher.
        """
        if self.live:
            try:
                self.refresh_vm(name)
            except VmdeckError as err:
                log.warning("refresh of %s after a write failed: %s", name, err)
                self.on_event(name)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


class WriteInvalidation:
    """ASGI middleware: a change request under /api/vms/{name} drops that VM's cached view.

    It acts when the answer starts (the change is made), before the client can ask again; it covers
    every route that changes a VM, also those added later (devices, snapshots ...). Routes that change
    what `list` shows refresh the VM themselves (Inventory.refresh_vm) before answering.
    """

    def __init__(self, app: Callable[..., Any], inventory: Inventory) -> None:
        self.app = app
        self.inventory = inventory

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or not path.startswith("/api/vms/"):
            await self.app(scope, receive, send)
            return
        name = path.split("/")[3]

        async def send_and_invalidate(message: Any) -> None:
            if message["type"] == "http.response.start" and name:
                self.inventory.on_event(name)
            await send(message)

        await self.app(scope, receive, send_and_invalidate)

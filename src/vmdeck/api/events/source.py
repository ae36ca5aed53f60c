"""libvirt's domain events, taken off libvirt's event thread at once (api layer).

libvirt calls back on its one event thread (vmdeck.host.events), which also runs every
console stream and keepalive of this process. A callback that asks libvirtd anything there
(the VM's project, its XML) holds them all up, and may deadlock when that call itself needs
the event loop (a reconnect). So the callbacks here only put an `EventRecord` (names, event
word, detail, the binding's handle) on a bounded queue; `vmdeck.api.events.worker` does every
lookup on its own thread.

The queue holds RECORD_CAPACITY records. When libvirt delivers faster than the worker can
follow (a burst of thousands of events), the newest records are dropped and `lost` is set:
the worker then has the inventory and the pages re-read everything, which is what the dropped
events would have told them piecemeal.

Registration follows the connection: the local host's shared handle (vmdeck.api.context.HostHandle)
calls `register_local` with every connection it opens (its own back-off paces the attempts while
libvirtd is away), a watchdog thread asks it once a second so a server without requests notices
too, and every remote host of the registry is registered on its fleet connection the same way.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable

from vmdeck.api.context import HostHandle
from vmdeck.api.events.messages import EventRecord
from vmdeck.cluster.fleet import Fleet
from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Domain

__all__ = ["EventSource", "RECORD_CAPACITY"]

# A burst of this many events waits for the worker; more than that and a full re-read is cheaper.
RECORD_CAPACITY = 4096
WATCH_INTERVAL_S = 1.0
# Remote hosts are registered in parallel under one deadline: a silent host never delays the others.
REMOTE_DEADLINE_S = 2.0


class EventSource:
    """Registers on every connection that delivers events; its callbacks fill `records` and nothing else."""

    def __init__(self, handle: HostHandle, fleet: Callable[[], Fleet | None],
                 on_registered: Callable[[str, bool], None], capacity: int = RECORD_CAPACITY) -> None:
        self.handle = handle
        self._fleet = fleet
        # (host name, reconnected): a host's new connection, events of the old one may have been missed
        self._on_registered = on_registered
        self.records: queue.Queue[EventRecord] = queue.Queue(maxsize=capacity)
        self.lost = threading.Event()  # records were dropped (queue full) since the worker last looked
        self.seen = 0  # events delivered by libvirt (dropped ones included)
        self._lock = threading.Lock()
        self._local: Host | None = None
        self._local_ids: list[int] = []
        self._remote: dict[str, tuple[Host, int]] = {}  # host name -> (connection, callback id)
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    # --- libvirt's event thread: no call to libvirt below this line until the next section --------------
    def _put(self, record: EventRecord) -> None:
        self.seen += 1
        try:
            self.records.put_nowait(record)
        except queue.Full:
            self.lost.set()

    def _lifecycle(self, host: str) -> Callable[[Domain, str, int], None]:
        def on_event(dom: Domain, event: str, detail: int) -> None:
            self._put(EventRecord(host, dom.name, "lifecycle", event, detail, dom))
        return on_event

    def _device(self, host: str) -> Callable[[Domain], None]:
        def on_event(dom: Domain) -> None:
            self._put(EventRecord(host, dom.name, "device", "", 0, dom))
        return on_event

    # --- registration (request threads, the watchdog) ----------------------------------------------------
    def start(self) -> None:
        self.handle.on_connect.append(self.register_local)
        # libvirtd down (or, in tests, another app holding this connection's callback): the watchdog retries.
        with contextlib.suppress(VmdeckError):
            self.register_local(self.handle.get())
        self._register_fleet()
        self._watchdog = threading.Thread(target=self._watch, name="vmdeck-events-watchdog", daemon=True)
        self._watchdog.start()

    def register_local(self, host: Host) -> None:
        """Events of the local host's (new) connection. The handle calls this under its lock with each
        connection it opens, before any request uses it, so no event of that connection is missed."""
        with self._lock:
            if host is self._local:
                return
            # Events ride on the connection the requests use: libvirt's test driver gives every
            # connection its own fake host, and on a real host one connection is one less socket.
            ids = [host.conn.on_lifecycle(self._lifecycle("local"))]
            ids += host.conn.on_device_change(self._device("local"))
            reconnected = self._local is not None
            self._local, self._local_ids = host, ids
        # Outside the lock: what the hub does about it may ask the handle, which calls us back.
        self._on_registered("local", reconnected)

    def _register_fleet(self) -> None:
        fleet = self._fleet()
        if fleet is None:
            return
        remote = [entry for entry in fleet.entries if entry.uri is not None]
        fleet.each(lambda host, entry: self._register_remote(entry.name, host), deadline=REMOTE_DEADLINE_S,
                   entries=remote)

    def _register_remote(self, name: str, host: Host) -> None:
        with self._lock:
            known = self._remote.get(name)
            if known is not None and known[0] is host:
                return
            self._remote[name] = (host, host.conn.on_lifecycle(self._lifecycle(name)))
        if known is not None:
            self._on_registered(name, True)

    def _watch(self) -> None:
        # libvirtd may restart under us: asking the handle reconnects (it backs off while libvirtd is
        # away), and the new connection comes back through register_local.
        while not self._stop.wait(WATCH_INTERVAL_S):
            with contextlib.suppress(VmdeckError):
                self.register_local(self.handle.get())
            self._register_fleet()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(ValueError):
            self.handle.on_connect.remove(self.register_local)
        with self._lock:
            local, ids, remote = self._local, self._local_ids, list(self._remote.values())
            self._local, self._local_ids = None, []
            self._remote.clear()
        if local is not None:
            for callback_id in ids:
                local.conn.remove_callback(callback_id)
            local.close()
        for host, callback_id in remote:
            host.conn.remove_callback(callback_id)

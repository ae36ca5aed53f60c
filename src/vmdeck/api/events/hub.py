"""The event hub: one server's stream, assembled from its parts (api layer).

    libvirt's event thread --records--> RecordWorker --messages--+
      (source.EventSource, bounded queue)  (worker.py)            +--> Subscribers --> each browser's
    StatsSampler (asyncio task, while someone watches) --sample--+    (fanout.py)     bounded queue
    routes (drain, migration lines) --------------------publish--+

`vmdeck serve` makes one at start-up (vmdeck.api.app) and keeps it in AppContext.events.
"""

from __future__ import annotations

from collections.abc import Callable

from vmdeck.api.context import AppContext, HostHandle, fleet_of
from vmdeck.api.events.fanout import ClientQueue, Subscribers
from vmdeck.api.events.messages import Message, resync_message
from vmdeck.api.events.source import EventSource
from vmdeck.api.events.stats import StatsSampler
from vmdeck.api.events.worker import RecordWorker
from vmdeck.api.inventory import Inventory
from vmdeck.cluster.fleet import Fleet
from vmdeck.host.events import ensure_event_loop

__all__ = ["EventHub"]


class EventHub:
    """Fans libvirt's domain events and the stats samples out to every connected browser."""

    def __init__(self, host: HostHandle, stats_interval: float, inventory: Inventory | None = None,
                 ctx: AppContext | None = None) -> None:
        self.host_handle = host
        self.inventory = inventory
        # With several hosts registered, each remote host's events are relayed too, tagged with its name.
        self.ctx = ctx
        self.subscribers = Subscribers()
        # VM name -> project, kept from events and samples: who may see a message about that VM.
        projects: dict[str, str | None] = {}
        self.source = EventSource(host, self._fleet, self._registered)
        self.worker = RecordWorker(self.source, self.publish, inventory, projects)
        self.sampler = StatsSampler(host, stats_interval, inventory, self._fleet, lambda: self.watching > 0,
                                    self.subscribers.publish, projects)

    @property
    def on_started(self) -> list[Callable[[str], None]]:
        """Callbacks for a local VM that started (run on the worker's thread)."""
        return self.worker.on_started

    @property
    def events_seen(self) -> int:
        return self.source.seen

    @property
    def watching(self) -> int:
        return len(self.subscribers)

    def _fleet(self) -> Fleet | None:
        return fleet_of(self.ctx) if self.ctx is not None else None

    def _registered(self, host: str, reconnected: bool) -> None:
        if host == "local" and self.inventory is not None:
            self.inventory.resync()  # events of the old connection may have been missed
        if reconnected:
            self.publish(resync_message("reconnected", None if host == "local" else host))

    def start(self) -> None:
        """Register on libvirt and start the worker and the sampler (on the server's event loop)."""
        ensure_event_loop()
        self.worker.start()
        self.source.start()
        self.sampler.start()

    def stop(self) -> None:
        self.source.stop()
        self.worker.stop()
        self.sampler.stop()

    def publish(self, message: Message) -> None:
        """Thread-safe: `message` for every browser (each sees what vmdeck.api.events.visibility lets it)."""
        self.subscribers.publish(message)

    def subscribe(self) -> ClientQueue:
        return self.subscribers.add()

    def unsubscribe(self, queue: ClientQueue) -> None:
        self.subscribers.remove(queue)

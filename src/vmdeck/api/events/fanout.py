"""Every browser's share of the stream: one bounded queue each, filled from any thread (api layer).

Why bounded, and what goes when a browser falls behind: a tab that stops reading (a laptop
asleep, a throttled background tab, a script that never calls recv) stalls its websocket's
sends, and whatever the server queued for it would otherwise grow for as long as the socket
stays open. Each browser's queue therefore holds at most CLIENT_LIMIT messages plus one stats
sample:
- stats: only the newest sample is worth drawing, so a new one replaces the one still waiting;
- everything else (state, inventory, device ... ): when CLIENT_LIMIT of them wait, the backlog is
  thrown away and replaced by one "inventory" message (reason "overflow"). Every page answers
  that by re-reading the list and the VM it shows, so a browser that catches up sees the truth
  rather than a history with holes, and the socket stays open (a slow tab is not cut off for it).
A browser that never reads costs at most CLIENT_LIMIT + 1 queued messages, however long it stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque

from vmdeck.api.events.messages import Outgoing, StatsSample, resync_message

__all__ = ["ClientQueue", "Subscribers", "CLIENT_LIMIT"]

CLIENT_LIMIT = 256


class ClientQueue:
    """One browser's pending messages. `put` and `get` run on that browser's event loop only."""

    def __init__(self, limit: int = CLIENT_LIMIT) -> None:
        self.limit = limit
        self._items: deque[Outgoing] = deque()
        self._ready = asyncio.Event()
        self.overflows = 0  # how often the backlog was replaced by a re-read

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> None:
        if isinstance(item, StatsSample):
            for pending in self._items:
                if isinstance(pending, StatsSample):
                    self._items.remove(pending)
                    break
        elif len(self._items) >= self.limit:
            stats = [pending for pending in self._items if isinstance(pending, StatsSample)]
            self._items.clear()
            self._items.extend(stats)
            self._items.append(resync_message("overflow"))
            self.overflows += 1
        self._items.append(item)
        self._ready.set()

    async def get(self) -> Outgoing:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class Subscribers:
    """The connected browsers. `publish` may be called from any thread (libvirt's worker, the sampler)."""

    def __init__(self, limit: int = CLIENT_LIMIT) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._clients: dict[ClientQueue, asyncio.AbstractEventLoop] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def add(self) -> ClientQueue:
        """A queue for a browser served on the running event loop."""
        client = ClientQueue(self.limit)
        with self._lock:
            self._clients[client] = asyncio.get_running_loop()
        return client

    def remove(self, client: ClientQueue) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def clients(self) -> list[tuple[ClientQueue, asyncio.AbstractEventLoop]]:
        """Each browser's queue and the loop it is served on (the tests count what waits there)."""
        with self._lock:
            return list(self._clients.items())

    def publish(self, item: Outgoing) -> None:
        for client, loop in self.clients():
            with contextlib.suppress(RuntimeError):  # that loop is closing
                loop.call_soon_threadsafe(client.put, item)

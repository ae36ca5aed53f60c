"""The event stream's parts without a server: the record queue libvirt's callbacks fill, and the stats sampler.

The record queue is bounded: a burst beyond it is dropped, counted, and answered with one
"re-read everything" message once the worker has caught up (sizes counted, not timed). The
sampler gives CPU percent only for a VM that may be sampled, so a shut-off VM never shows the
CPU it used before it stopped.
"""

from __future__ import annotations

import asyncio
import threading
from typing import cast

from vmdeck.api.context import HostHandle
from vmdeck.api.events.messages import Message
from vmdeck.api.events.source import EventSource
from vmdeck.api.events.stats import StatsSampler
from vmdeck.api.events.worker import RecordWorker
from vmdeck.errors import HostError, NotFound
from vmdeck.host.libvirt_api import Domain
from vmdeck.vm.inventory import VmSummary


class _Handle:
    """A host handle whose libvirtd is away (the sampler's uptimes and host figures are then blank)."""

    on_connect: list[object] = []

    def get(self) -> object:
        raise HostError("libvirtd is away")


class _Domain:
    """What a libvirt callback hands over: a name, and metadata (no vmdeck project here)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def metadata(self, namespace: str, *, live: bool = False) -> str:
        raise NotFound(f"no metadata on {self.name}")


def test_a_burst_beyond_the_record_queue_is_dropped_then_re_read() -> None:
    published: list[Message] = []
    done = threading.Event()
    source = EventSource(cast(HostHandle, _Handle()), lambda: None, lambda host, again: None, capacity=8)
    on_event = source._lifecycle("local")
    peak = 0
    for i in range(1000):  # libvirt's thread, while the worker is not running yet
        on_event(cast(Domain, _Domain(f"vm{i}")), "started", 0)
        peak = max(peak, source.records.qsize())
    assert peak == 8 and source.lost.is_set() and source.seen == 1000

    def publish(message: Message) -> None:
        published.append(message)
        if message.get("reason") == "events-dropped":
            done.set()

    worker = RecordWorker(source, publish, None, {})
    worker.start()
    try:
        assert done.wait(60)
    finally:
        worker.stop()
    # The eight queued arrive in libvirt's order, then one message tells the pages to re-read the rest.
    assert [m["vm"] for m in published[:8]] == [f"vm{i}" for i in range(8)]
    assert published[8] == {"type": "inventory", "reason": "events-dropped"} and len(published) == 9
    assert not source.lost.is_set()


def test_a_stopped_vm_shows_no_cpu() -> None:
    sampler = StatsSampler(cast(HostHandle, _Handle()), 1.0, None, lambda: None, lambda: True, lambda s: None, {})

    def vm(state: str, cpu_ns: int) -> VmSummary:
        return VmSummary("web1", state, 1, 512, True, cpu_ns, 2048)

    async def samples() -> list[float | None]:
        found = []
        for state, cpu_ns in (("running", 0), ("running", 10**9), ("shut off", 2 * 10**9), ("running", 3 * 10**9),
                              ("running", 4 * 10**9)):
            sample = await sampler.sample([vm(state, cpu_ns)])
            found.append(sample.vms["web1"].cpu_pct)
            await asyncio.sleep(0.01)
        return found

    first, busy, stopped, restarted, again = asyncio.run(samples())
    # No rate from one sample, nor across a stop; a rate once two samples of a running VM exist.
    assert first is None and busy is not None and busy > 0
    assert stopped is None and restarted is None and again is not None

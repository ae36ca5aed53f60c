"""The running VMs' guest addresses for the stats samples, asked of the guest agent in the background (api layer).

An address costs an agent round trip per VM (and a silent agent its timeout), and changes
rarely: the poller asks at most every ADDRESS_INTERVAL_S, in a worker thread, one round at a
time, and the sampler reads whatever is known so far, so no sample ever waits for an agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import anyio

from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.vm.inventory import VmSummary
from vmdeck.vm.runtime import guest_addresses
from vmdeck.vm.state import VmState, to_state

__all__ = ["AddressPoller", "ADDRESS_INTERVAL_S"]

ADDRESS_INTERVAL_S = 30.0


class AddressPoller:
    def __init__(self, get_host: Callable[[], Host], interval: float = ADDRESS_INTERVAL_S) -> None:
        self.get_host = get_host
        self.interval = interval
        self._known: dict[str, tuple[str, ...]] = {}
        self._asked_at = -interval
        self._task: asyncio.Task[None] | None = None

    def known(self, name: str) -> tuple[str, ...]:
        return self._known.get(name, ())

    def refresh(self, summaries: list[VmSummary]) -> None:
        """Forget stopped VMs; start a round of questions when it is due (on the running event loop)."""
        # Only a running guest answers its agent (a paused one holds the question until resumed).
        running = [vm.name for vm in summaries if to_state(vm.state) is VmState.RUNNING]
        self._known = {name: found for name, found in self._known.items() if name in running}
        busy = self._task is not None and not self._task.done()
        if busy or not running or time.monotonic() - self._asked_at < self.interval:
            return
        self._asked_at = time.monotonic()

        def ask() -> dict[str, tuple[str, ...]]:
            host = self.get_host()
            found: dict[str, tuple[str, ...]] = {}
            for name in running:
                with contextlib.suppress(VmdeckError):
                    found[name] = tuple(guest_addresses(host, name).addresses)
            return found

        async def round_() -> None:
            with contextlib.suppress(VmdeckError):
                self._known.update(await anyio.to_thread.run_sync(ask))

        self._task = asyncio.get_running_loop().create_task(round_())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

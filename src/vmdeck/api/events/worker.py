"""Turns libvirt's event records into the stream's messages, off libvirt's event thread (api layer).

One thread takes `EventRecord`s from the source's bounded queue in the order libvirt sent them,
tells the inventory, asks libvirt what the event itself does not say (the VM's project, which
decides who may see the message) and publishes the message. Everything here may block on
libvirtd: that is why it is not done in the callbacks (vmdeck.api.events.source).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from vmdeck.api.events.messages import EventRecord, Message, resync_message
from vmdeck.api.events.source import EventSource
from vmdeck.api.inventory import Inventory
from vmdeck.errors import VmdeckError
from vmdeck.vm.project import domain_project
from vmdeck.vm.state import VmState, allowed_actions, capabilities

__all__ = ["RecordWorker", "STATE_AFTER"]

log = logging.getLogger("vmdeck.api.events")

# The state a VM is in after each lifecycle event (None: the event says nothing about it).
STATE_AFTER: dict[str, VmState | None] = {
    "defined": None,
    "undefined": None,
    "started": VmState.RUNNING,
    "suspended": VmState.PAUSED,
    "resumed": VmState.RUNNING,
    "stopped": VmState.SHUT_OFF,
    "shutdown": VmState.SHUTTING_DOWN,
    "pmsuspended": VmState.SUSPENDED,
    "crashed": VmState.CRASHED,
}
_POLL_S = 0.5  # how often an idle worker looks whether it should stop


class RecordWorker:
    """The one consumer of `source.records`."""

    def __init__(self, source: EventSource, publish: Callable[[Message], None], inventory: Inventory | None,
                 projects: dict[str, str | None]) -> None:
        self.source = source
        self.publish = publish
        self.inventory = inventory
        # VM name -> project, also kept by the stats sampler: an undefined VM has no metadata left to read.
        self.projects = projects
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Called with a local VM's name once it started (vmdeck.api.forward_watch: its port forwards), here
        # on the worker's thread, never on libvirt's.
        self.on_started: list[Callable[[str], None]] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vmdeck-events-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                record = self.source.records.get(timeout=_POLL_S)
            except queue.Empty:
                record = None
            if record is not None:
                try:
                    self.handle(record)
                except Exception:  # one bad record must not end the stream for everyone
                    log.exception("event %s of %s not handled", record.event or record.kind, record.vm)
            if self.source.lost.is_set() and self.source.records.empty():
                # Events were dropped: what they would have said, the inventory and the pages re-read.
                self.source.lost.clear()
                if self.inventory is not None:
                    self.inventory.resync()
                self.publish(resync_message("events-dropped"))

    def handle(self, record: EventRecord) -> None:
        if record.kind == "device":
            self._device(record)
        else:
            self._lifecycle(record)

    def _lifecycle(self, record: EventRecord) -> None:
        state = STATE_AFTER.get(record.event)
        if self.inventory is not None and record.host == "local":
            self.inventory.on_event(record.vm, state)
        if record.event != "undefined":  # an undefined VM has no metadata left: its last known project is kept
            self.projects[record.vm] = domain_project(record.dom)
        message: Message = {"type": "inventory" if record.event in ("defined", "undefined") else "state",
                            "vm": record.vm, "event": record.event, "detail": record.detail,
                            "state": state, "at": time.time(), "host": record.host,
                            "project": self.projects.get(record.vm)}
        if state is not None:  # what the pages enable in the new state: they keep no state names of their own
            message["allowed_actions"] = allowed_actions(state)
            message["can"] = capabilities(state)
        self.publish(message)
        if record.event == "started" and record.host == "local":
            for started in self.on_started:
                started(record.vm)

    def _device(self, record: EventRecord) -> None:
        if self.inventory is not None:
            self.inventory.on_event(record.vm)
        with contextlib.suppress(VmdeckError):  # a metadata change may have moved the VM to another project
            self.projects[record.vm] = domain_project(record.dom)
        # Open VM pages re-read its disks and media (a CD inserted or a disk removed from the CLI).
        self.publish({"type": "device", "vm": record.vm, "at": time.time(), "host": record.host,
                      "project": self.projects.get(record.vm)})

"""Start several VMs at once and wait until every guest is ready: a boot storm (core layer).

`vmdeck start --wait A B C ...` and the benchmark of docs/PERFORMANCE.md come here. The starts are
issued concurrently (libvirtd runs each in its own worker thread; one connection multiplexes the
calls), then one loop watches every guest: the new bytes of each serial log, the guest agent (ready
means what lifecycle.wait_ready says: the agent answers, or the marker alone without an agent; then,
for a VM made from an image, cloud-init finished and SSH answering: vm/sshready.py) and now and then
the VM's state, so twenty waiting guests cost one thread, not twenty.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmdeck.errors import GuestError, StateError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Domain
from vmdeck.vm.lifecycle import AGENT_GRACE_S, READY_MARKER
from vmdeck.vm.state import ACTIVE, POWER_VERBS, current_state, require_verb

if TYPE_CHECKING:
    from vmdeck.vm.sshready import SshGate  # imports lxml: `vmdeck start A B` without --wait must not

__all__ = ["start_many", "MAX_PARALLEL_STARTS"]

# libvirtd's default max_workers is 20: more concurrent starts than that would only queue there.
MAX_PARALLEL_STARTS = 20
Progress = Callable[[str], None]
_POLL = 0.1  # seconds between two reads of the serial logs
_STATE_EVERY = 1.0  # seconds between two state checks of a waiting VM (a crashed guest fails fast)
_AGENT_EVERY = 2.0  # seconds between two agent pings of one VM that has not printed its marker yet
_AGENT_AFTER_MARKER = 0.3  # ... and once it has: its agent is expected any moment
_GATE_EVERY = 1.0  # seconds between two looks at a booted image VM's cloud-init and SSH server


@dataclass
class _Waiting:
    dom: Domain
    log: Path | None
    has_agent: bool
    offset: int = 0
    tail: bytes = b""
    next_state: float = 0.0
    next_agent: float = 0.0
    marker_at: float | None = None
    gate: SshGate | None = None  # a VM made from an image: ready once reachable by ssh
    booted: bool = False  # the agent (or the marker) said so; with a gate, ssh is awaited next
    next_gate: float = 0.0

    def marker_seen(self, marker: bytes) -> bool:
        """Read only what the log gained since the last look (a long boot log is not re-read)."""
        if self.log is None:
            return False
        with contextlib.suppress(OSError), self.log.open("rb") as handle:
            if handle.seek(0, 2) < self.offset:  # the log was truncated (libvirt starts each boot afresh)
                self.offset, self.tail = 0, b""
            handle.seek(self.offset)
            fresh = handle.read()
            self.offset += len(fresh)
            window = self.tail + fresh
            if marker in window:
                return True
            self.tail = window[-len(marker):]
        return False


def _start_one(dom: Domain) -> None:
    POWER_VERBS["start"].act(dom)


def start_many(host: Host, names: list[str], *, wait: bool = False, timeout: float = 120.0,
               progress: Progress = lambda _m: None) -> dict[str, float | None]:
    """Start every VM in `names` at once; with `wait`, return when each guest is ready.

    Nothing starts unless every VM exists and is shut off. Returns seconds from the start of the
    storm until each guest was ready (None without `wait`). A VM that fails to start or to become
    ready does not stop the others: the first such error is raised once all are settled.
    """
    doms = [host.lookup(name) for name in dict.fromkeys(names)]
    for dom in doms:
        require_verb(dom, "start")
    started_at = time.monotonic()
    failures: list[VmdeckError] = []
    started: list[Domain] = []
    with ThreadPoolExecutor(max_workers=min(len(doms), MAX_PARALLEL_STARTS) or 1) as pool:
        for dom, future in [(dom, pool.submit(_start_one, dom)) for dom in doms]:
            try:
                future.result()
                started.append(dom)
                progress(f"{dom.name} started")
            except VmdeckError as err:
                failures.append(err)
    ready: dict[str, float | None] = {dom.name: None for dom in started}
    if wait and started:
        ready.update(_wait_all(host, started, started_at, timeout, progress, failures))
    if failures:
        raise failures[0]
    return ready


def _wait_all(host: Host, doms: list[Domain], started_at: float, timeout: float, progress: Progress,
              failures: list[VmdeckError]) -> dict[str, float]:
    from vmdeck.domxml.parse import parse_domain
    from vmdeck.vm.agent import agent_ping
    from vmdeck.vm.sshready import ssh_gate

    pending: list[_Waiting] = []
    for dom in doms:
        view = parse_domain(dom.xml())
        log = Path(view.serial_log) if view.serial_log and host.is_local else None
        if log is None and not view.has_agent_channel:
            failures.append(GuestError(f"VM {dom.name!r} has neither a serial log nor a guest agent: "
                                       "cannot tell when it is ready"))
            continue
        pending.append(_Waiting(dom, log, view.has_agent_channel, gate=ssh_gate(host, dom, view)))
    progress(f"waiting for {len(pending)} VM(s) to be ready (up to {timeout:g} s)")
    marker = READY_MARKER.encode()
    ready: dict[str, float] = {}
    deadline = started_at + timeout
    while pending and time.monotonic() < deadline:
        now = time.monotonic()
        pinged = False  # at most one agent ping per pass for guests not yet past their marker
        for vm in list(pending):
            if vm.marker_at is None and vm.marker_seen(marker):
                vm.marker_at, vm.next_agent = now, now  # the agent usually starts a moment after the marker
            # Ready as lifecycle.wait_ready says: the agent answering; the marker alone when the VM has no
            # agent channel or its agent stays silent for AGENT_GRACE_S (callers run `exec` next).
            seen_at = None
            if vm.booted:
                if vm.gate is not None and now >= vm.next_gate:
                    vm.next_gate = now + _GATE_EVERY
                    if vm.gate.check():
                        seen_at = time.monotonic()
            elif vm.has_agent and now >= vm.next_agent and (vm.marker_at is not None or not pinged):
                pinged = pinged or vm.marker_at is None
                vm.next_agent = now + (_AGENT_AFTER_MARKER if vm.marker_at is not None else _AGENT_EVERY)
                if agent_ping(vm.dom, timeout=1):
                    seen_at = time.monotonic()
            if seen_at is None and not vm.booted and vm.marker_at is not None and (
                    not vm.has_agent or now - vm.marker_at > AGENT_GRACE_S):
                seen_at = vm.marker_at
            if seen_at is not None and not vm.booted and vm.gate is not None:
                vm.booted, seen_at = True, None  # booted: now cloud-init and the SSH server
                progress(f"{vm.dom.name} booted; waiting for cloud-init and SSH")
            if seen_at is not None:
                ready[vm.dom.name] = seen_at - started_at
                progress(f"{vm.dom.name} ready")
                pending.remove(vm)
                continue
            if now >= vm.next_state:
                vm.next_state = now + _STATE_EVERY
                try:
                    state = current_state(vm.dom)
                except VmdeckError as err:
                    failures.append(err)
                    pending.remove(vm)
                    continue
                if state not in ACTIVE:
                    failures.append(StateError(vm.dom.name, state, "running", "wait for"))
                    pending.remove(vm)
        if pending:
            time.sleep(_POLL)
    for vm in pending:
        why = f" ({vm.gate.status})" if vm.booted and vm.gate is not None else ""
        failures.append(GuestError(f"VM {vm.dom.name!r} did not become ready within {timeout:g} s{why}"))
    return ready

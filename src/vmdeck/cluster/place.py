"""Placing a VM on the fleet: ask every host for its capacity, add the creates still in progress, pick
with vmdeck.cluster.placement, and hold the choice until the caller is done (core layer).

The decision runs inside the placement book's short exclusive transaction (vmdeck.cluster.pending), so
two placements at once, in one process or two, on one server or several, never both take the same
free memory; the hosts are asked before it, so no database lock waits on a slow host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.inventory import capacities
from vmdeck.cluster.pending import Claim, PlacementBook
from vmdeck.cluster.placement import NoRoom, choose_host, rejection, with_pending
from vmdeck.cluster.registry import HostEntry
from vmdeck.errors import Conflict
from vmdeck.spec.models import VmSpec

__all__ = ["placed", "room_for"]


@contextlib.contextmanager
def placed(fleet: Fleet, spec: VmSpec, host_name: str | None = None) -> Iterator[HostEntry]:
    """The registry entry of the host new VM `spec` goes to (`host_name`, or the best fit), its room held
    while the body creates (and starts) the VM; refusals say why for every host."""
    with room_for(fleet, spec.name, spec.vcpus, spec.memory_mib, host_name=host_name, new=True) as entry:
        yield entry


@contextlib.contextmanager
def room_for(fleet: Fleet, vm: str, vcpus: int, memory_mib: int, *, host_name: str | None = None,
             exclude: Iterable[str] = (), new: bool = False) -> Iterator[HostEntry]:
    """Hold room for VM `vm` (vcpus, memory_mib) on `host_name` or the best host but `exclude` while the body
    runs. `new`: the name must be free on every host and in every placement in progress."""
    book = PlacementBook(fleet.registry.location)
    what = f"VM {vm!r}"
    # Every host is asked before the decision's exclusive transaction, never inside it (vmdeck.store.counters):
    # `seen` makes the decision count the claims released while the hosts were being asked.
    seen = book.seen()
    caps0 = capacities(fleet)
    if new:
        taken = [c.name for c in caps0 if c.reachable and fleet.host(c.name).exists(vm)]
        if taken:
            raise Conflict(f"a VM named {vm!r} already exists on host {taken[0]}")
    entry = fleet.entry(host_name) if host_name is not None else None

    def choose(claims: list[Claim]) -> Claim:
        if new and any(c.vm == vm for c in claims):
            raise Conflict(f"a VM named {vm!r} is being created right now")
        caps = with_pending(caps0, [(c.host, c.vm, c.vcpus, c.memory_mib) for c in claims])
        if entry is not None:
            cap = next(c for c in caps if c.name == entry.name)
            why = rejection(cap, vcpus, memory_mib)
            if why is not None:
                raise NoRoom(f"{what} ({vcpus} vCPU, {memory_mib} MiB)", {entry.name: why})
            return Claim(entry.name, vm, vcpus, memory_mib)
        return Claim(choose_host(caps, vcpus, memory_mib, what=what, exclude=exclude).name, vm, vcpus, memory_mib)

    with book.hold(seen, choose) as claim:
        yield entry if entry is not None else fleet.entry(claim.host)

"""Drain a host for maintenance: move every VM off it, one at a time, to hosts placement picks (core layer).

The host is marked draining first, so nothing new is placed there while its VMs leave. Running VMs
are live-migrated (their vmdeck-owned disks copied, as `vmdeck migrate` does when storage is not
shared); shut-off VMs move offline. One VM at a time: each placement sees where the previous ones
went (and each holds its destination's room while it moves, vmdeck.cluster.place), and the hosts'
links carry one copy at a time. A VM that cannot move (no room anywhere, a
failed migration) is reported and stays where it was, running if it ran; the others still move.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.place import room_for
from vmdeck.cluster.registry import Registry
from vmdeck.errors import VmdeckError
from vmdeck.vm.inventory import list_vms
from vmdeck.vm.migrate import migrate
from vmdeck.vm.state import ACTIVE, to_state

__all__ = ["DrainReport", "drain_host"]

Progress = Callable[[str], None]


@dataclass
class DrainReport:
    host: str
    moved: dict[str, str] = field(default_factory=dict)  # VM -> host it went to
    failed: dict[str, str] = field(default_factory=dict)  # VM -> why it stayed

    @property
    def complete(self) -> bool:
        return not self.failed


def drain_host(fleet: Fleet, registry: Registry, name: str, *, timeout: float | None = None,
               progress: Progress = lambda _m: None) -> DrainReport:
    """Mark host `name` draining and move each of its VMs away; `timeout` bounds each live migration."""
    registry.update(name, draining=True)
    source = fleet.host(fleet.entry(name))
    report = DrainReport(name)
    vms = list_vms(source)
    # Running VMs first: they are why a host is drained before maintenance.
    vms.sort(key=lambda vm: (vm.state not in ACTIVE, vm.name))
    for index, vm in enumerate(vms, 1):
        live = to_state(vm.state).may_migrate_live
        prefix = f"[{index}/{len(vms)}] {vm.name}"
        try:
            if vm.state in ACTIVE and not live:
                raise VmdeckError(f"it is {vm.state}: wait until it runs or is shut off")
            if not live and not vm.persistent:
                continue  # a transient VM that is not running no longer exists
            # The destination's room is held while the VM moves, so a create placed meanwhile sees it taken.
            with room_for(fleet, vm.name, vm.vcpus, vm.memory_mib, exclude=[name]) as entry:
                progress(f"{prefix}: {'live-migrating' if live else 'moving (offline)'} to {entry.name}")

                def step(line: str, p: str = prefix) -> None:
                    progress(f"{p}: {line}")

                summary = migrate(source, vm.name, entry.connect_uri, live=live, migrate_uri=entry.migrate_uri,
                                  timeout=timeout, progress=step)
            progress(f"{prefix}: {summary}")
            report.moved[vm.name] = entry.name
        except VmdeckError as err:
            progress(f"{prefix}: stays on {name}: {err}")
            report.failed[vm.name] = str(err)
    return report

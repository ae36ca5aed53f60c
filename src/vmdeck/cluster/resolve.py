"""Which host a VM lives on: the one resolver the CLI and the API use for every VM name (core layer).

VM names are unique across hosts (creation and migration refuse a name another host has), so a
name finds its host. With one host registered nothing is asked: that host's own lookup says "not
found". With several, every host is asked at once under the fleet's deadline; `--host` (CLI) or
`?host=` (API) names the host outright when two hosts hold the same name (VMs made outside vmdeck).
"""

from __future__ import annotations

from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.registry import HostEntry
from vmdeck.errors import Conflict, HostError, NotFound
from vmdeck.host.connection import Host

__all__ = ["locate", "vm_host"]


def locate(fleet: Fleet, name: str, *, host: str | None = None) -> tuple[HostEntry, Host]:
    """(registry entry, open connection) of the host that has VM `name`."""
    if host is not None:
        entry = fleet.entry(host)
        return entry, fleet.host(entry)
    entries = fleet.entries
    if len(entries) == 1:
        return entries[0], fleet.host(entries[0])
    answers = fleet.each(lambda h, _e: h.exists(name))
    holders = [a.entry for a in answers if a.value]
    if len(holders) == 1:
        return holders[0], fleet.host(holders[0])
    if len(holders) > 1:
        raise Conflict(f"VM {name!r} exists on several hosts ({', '.join(e.name for e in holders)}): "
                       "name one with --host")
    down = [f"{a.entry.name} ({a.error})" for a in answers if a.error is not None]
    if down:
        raise HostError(f"no VM named {name!r} on the reachable hosts; not asked: {'; '.join(down)}")
    raise NotFound(f"no VM named {name!r} on any host ({', '.join(e.name for e in entries)})")


def vm_host(fleet: Fleet, name: str, *, host: str | None = None) -> Host:
    return locate(fleet, name, host=host)[1]

"""Which libvirt host(s) a command talks to (CLI layer): `--connect URI`, or the host registry.

`--connect URI` (or $VMDECK_URI) is that one host, as before the registry existed. Otherwise the
registry decides: with only the default `local` registered a command goes straight to it (no
threads, no deadline machinery: the fast paths stay fast); with more, a command about a VM finds
the VM's host through the one resolver (vmdeck.cluster.resolve) and `list` asks every host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmdeck.host.connection import Host, connect

if TYPE_CHECKING:
    from vmdeck.cluster.fleet import Fleet
    from vmdeck.cluster.registry import HostEntry

__all__ = ["registered", "only_local", "open_host"]


def registered() -> list[HostEntry]:
    """The registered hosts (one small SQLite query; none at all without a database)."""
    from vmdeck.cluster.registry import Registry

    return Registry().entries()


def only_local(entries: list[HostEntry] | None = None) -> bool:
    """True when only the default local host is registered (vmdeck.usecases.topology: the API's rule too)."""
    from vmdeck.usecases.topology import only_local as one_host

    return one_host(registered() if entries is None else entries)


def open_host(uri: str | None, host_name: str | None, vm: str | None, entries: list[HostEntry],
              fleet: Fleet | None) -> Host:
    """The host a command works on: `uri`; else VM `vm`'s host (or `host_name`); else the first registered."""
    if uri:
        return connect(uri)
    if host_name is None and only_local(entries):
        return connect(entries[0].connect_uri)
    assert fleet is not None, "several hosts need the fleet"
    if vm is None:
        return fleet.host(fleet.entry(host_name) if host_name else entries[0])
    from vmdeck.cluster.resolve import vm_host

    return vm_host(fleet, vm, host=host_name)

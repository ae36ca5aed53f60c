"""Where a port forward goes: the VM's NIC on a vmdeck NAT network and its fixed address (core layer).

A forward needs an address that stays the guest's: the NIC's static DHCP reservation
(vmdeck.vm.networks.reserve). A VM without one gets one when its first forward is made: the address
the guest holds now (libvirt's DHCP lease), so a running guest keeps it, else the range's first free
one. The rules are made from the reservation each time they are applied, so a reservation changed
with `vmdeck network reserve` is followed at the next apply.

Forwards are a firewall of the machine vmdeck runs on: only a host reached through a local URI
(qemu:///system) has its networks' bridges here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from vmdeck.domxml.network import NetworkView, Reservation, macs_on_network, nic_networks, reservation_xml
from vmdeck.errors import Conflict, InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.vm import networks
from vmdeck.vm.forward_rules import ForwardRule

__all__ = ["Target", "target", "guest_address", "undo_reservation", "rules_for", "ForwardLike"]


@dataclass(frozen=True)
class Target:
    network: NetworkView
    mac: str


def _local(host: Host) -> None:
    if not host.is_local:
        raise InvalidInput(f"port forwards are made on the VM's own host: run vmdeck there (not through {host.uri})")


def target(host: Host, vm: str) -> Target:
    """The VM's first NIC on a NAT network vmdeck made; InvalidInput when it has none."""
    _local(host)
    config = host.lookup(vm).xml(inactive=True)
    seen = []
    for name in sorted(nic_networks(config)):
        if name == "user" or not host.conn.has_network(name):
            continue
        view = networks.show_network(host, name)
        seen.append(f"{name} ({view.mode if view.vmdeck else 'not made by vmdeck'})")
        if view.vmdeck and view.mode == "nat" and view.bridge:
            if not view.active:
                raise Conflict(f"network {name!r} of VM {vm!r} is not active: start it first (virsh net-start {name})")
            return Target(view, macs_on_network(config, name)[0])
    where = f"its networks: {', '.join(seen)}" if seen else "it has no NIC on a libvirt network"
    raise InvalidInput(f"VM {vm!r} has no NIC on a vmdeck NAT network ({where}): forwards need one "
                       "(vmdeck network create NAME --mode nat)", field="vm")


def _lease(host: Host, vm: str, mac: str) -> str | None:
    """The IPv4 address libvirt's DHCP server leased to `mac` now, if the VM runs and has one."""
    with contextlib.suppress(VmdeckError):
        dom = host.lookup(vm)
        if dom.is_active():
            for nic in dom.interface_addresses("lease").values():
                if str(nic.get("hwaddr", "")).lower() == mac.lower():
                    for addr in nic.get("addrs") or []:
                        if addr.get("type") == 0:  # VIR_IP_ADDR_TYPE_IPV4
                            return str(addr["addr"])
    return None


def guest_address(host: Host, vm: str, where: Target) -> tuple[str, Reservation | None]:
    """The NIC's reserved address, reserving one when there is none: (address, the reservation made now)."""
    for r in where.network.reservations:
        if r.mac.lower() == where.mac.lower():
            return r.ip, None
    made = networks.reserve(host, where.network.name, vm, _lease(host, vm, where.mac))
    return made.ip, made


def undo_reservation(host: Host, network: str, made: Reservation) -> None:
    """Take back a reservation guest_address made (a later step of the forward failed)."""
    with contextlib.suppress(VmdeckError):
        net = host.conn.network(network)
        net.remove_dhcp_host(reservation_xml(made), live=net.is_active())


class ForwardLike(Protocol):
    """What rules_for reads of a stored forward (vmdeck.store.forwards.Forward)."""

    @property
    def vm(self) -> str: ...
    @property
    def network(self) -> str: ...
    @property
    def mac(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def proto(self) -> str: ...
    @property
    def host_port(self) -> int: ...
    @property
    def guest_ip(self) -> str: ...
    @property
    def guest_port(self) -> int: ...


F = TypeVar("F", bound=ForwardLike)


def rules_for(host: Host, forwards: Iterable[F]) -> list[tuple[F, ForwardRule]]:
    """Each forward whose VM is defined here and whose network exists and is active, as a rule to its NIC's
    current reservation (the stored address when the reservation is gone). A VM undefined behind vmdeck's
    back (virsh) or migrated away keeps its rows but gets no rules: they would lead nowhere."""
    views: dict[str, NetworkView | None] = {}
    made = []
    for f in forwards:
        if f.network not in views:
            try:
                views[f.network] = networks.show_network(host, f.network)
            except NotFound:
                views[f.network] = None
        view = views[f.network]
        if view is None or not view.active or not view.bridge or not host.exists(f.vm):
            continue
        ip = next((r.ip for r in view.reservations if r.mac.lower() == f.mac.lower()), f.guest_ip)
        made.append((f, ForwardRule(f.address, f.proto, f.host_port, ip, f.guest_port, view.bridge)))
    return made

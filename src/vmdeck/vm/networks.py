"""Virtual networks as objects (core layer): create, list, show, delete, DHCP reservations, and which
network a project's VM may join.

Creating is all or nothing: the spec is checked (name, subnet, range, no overlap with another network or
an address of this host) before libvirt is asked, and a network libvirt defined but could not start is
undefined again. A project's VM may join its own project's networks, `user`, and what an administrator
allowed it (vmdeck.usecases.devices.check_nic_networks); another project's network answers like one that
does not exist. NICs on vmdeck's networks carry libvirt's `clean-traffic` filter: a guest that sends
with another MAC or IP than its own is dropped (no spoofing of neighbours).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess

from vmdeck.domxml.network import (
    NetworkSpec,
    NetworkView,
    Reservation,
    clean_traffic_nics,
    macs_on_network,
    make_spec,
    network_xml,
    nic_networks,
    parse_network,
    reservation_xml,
)
from vmdeck.errors import Conflict, InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Network

__all__ = ["create_network", "list_networks", "show_network", "delete_network", "reserve", "network_users",
           "clean_traffic_nics", "vmdeck_networks", "project_networks"]  # clean_traffic_nics: from domxml


def _view(net: Network) -> NetworkView:
    return parse_network(net.xml(inactive=False), active=net.is_active(), autostart=net.autostart())


def list_networks(host: Host, *, project: str | None = None, admin: bool = True) -> list[NetworkView]:
    """Every network (administrators), or the ones of `project`."""
    views = [_view(n) for n in host.conn.networks()]
    if not admin:
        views = [v for v in views if v.vmdeck and v.project is not None and v.project == project]
    return sorted(views, key=lambda v: v.name)


def show_network(host: Host, name: str, *, project: str | None = None, admin: bool = True) -> NetworkView:
    if not host.conn.has_network(name):
        raise _missing(name)
    view = _view(host.conn.network(name))
    if not admin and (not view.vmdeck or view.project != project):
        raise _missing(name)
    return view


def _missing(name: str) -> NotFound:
    return NotFound(f"no network named {name!r}")


def _host_addresses() -> list[ipaddress.IPv4Interface]:
    """This host's own IPv4 addresses with their prefixes (`ip -j addr`), for the overlap check."""
    try:
        done = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, timeout=10)
        data = json.loads(done.stdout or "[]")
    except (OSError, ValueError, subprocess.SubprocessError):
        return []
    return [ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}") for link in data
            for a in link.get("addr_info", []) if a.get("family") == "inet"]


def _check_overlap(host: Host, spec: NetworkSpec) -> None:
    for other in list_networks(host):
        if other.subnet and ipaddress.IPv4Network(other.subnet).overlaps(spec.subnet):
            raise Conflict(f"subnet {spec.subnet} overlaps network {other.name!r} ({other.subnet})")
    if host.is_local:
        for address in _host_addresses():
            if address.network.overlaps(spec.subnet) and not address.ip.is_loopback:
                raise Conflict(f"subnet {spec.subnet} overlaps this host's address {address}")


def create_network(host: Host, name: str, *, mode: str = "nat", subnet: str, dhcp_range: str | None = None,
                   project: str | None = None) -> NetworkView:
    """Define, start and autostart a network; nothing is left behind when a step fails."""
    spec = make_spec(name, mode, subnet, dhcp_range, project)
    if host.conn.has_network(name):
        raise Conflict(f"a network named {name!r} already exists")
    _check_overlap(host, spec)
    net = host.conn.define_network(network_xml(spec))
    try:
        net.start()
        net.set_autostart(True)
    except VmdeckError:
        try:
            if net.is_active():
                net.destroy()
        finally:
            net.undefine()
        raise
    return _view(net)


def network_users(host: Host, name: str) -> list[str]:
    """The VMs with a NIC on network `name` (in their running or their saved definition)."""
    return sorted(dom.name for dom in host.conn.domains()
                  if any(name in nic_networks(xml) for xml in (dom.xml(), dom.xml(inactive=True))))


def delete_network(host: Host, name: str, *, project: str | None = None, admin: bool = True) -> None:
    show_network(host, name, project=project, admin=admin)
    users = network_users(host, name)
    if users:
        raise Conflict(f"network {name!r} is used by VM(s) {', '.join(users)}: remove their NICs first")
    net = host.conn.network(name)
    if net.is_active():
        net.destroy()
    net.undefine()


def reserve(host: Host, network: str, vm: str, ip: str | None = None, *, project: str | None = None,
            admin: bool = True) -> Reservation:
    """A static DHCP lease on `network` for VM `vm`'s NIC there: `ip`, or the first free one."""
    view = show_network(host, network, project=project, admin=admin)
    if view.subnet is None or view.dhcp is None:
        raise InvalidInput(f"network {network!r} has no DHCP range to reserve in")
    dom = host.lookup(vm)
    macs = macs_on_network(dom.xml(inactive=True), network)
    if not macs:
        raise NotFound(f"VM {vm!r} has no NIC on network {network!r}")
    subnet = ipaddress.IPv4Network(view.subnet)
    taken = {r.ip for r in view.reservations}
    if any(r.mac == macs[0] for r in view.reservations):
        raise Conflict(f"VM {vm!r} already has a reservation on {network!r}")
    if ip is None:
        first, last = (ipaddress.IPv4Address(a) for a in view.dhcp)
        free = (str(ipaddress.IPv4Address(n)) for n in range(int(first), int(last) + 1))
        ip = next((a for a in free if a not in taken), None)
        if ip is None:
            raise Conflict(f"no free address left in the DHCP range of {network!r}")
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError as err:
        raise InvalidInput(f"invalid IPv4 address {ip!r}", field="ip") from err
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address) \
            or str(address) == view.gateway:
        raise InvalidInput(f"{address} is not a guest address of {subnet}", field="ip")
    if str(address) in taken:
        raise Conflict(f"{address} is reserved already on {network!r}")
    reservation = Reservation(macs[0], str(address), vm)
    net = host.conn.network(network)
    net.add_dhcp_host(reservation_xml(reservation), live=net.is_active())
    return reservation


def reservations_of(host: Host, vm: str) -> list[tuple[str, Reservation]]:
    """(network, reservation) of every static DHCP lease a vmdeck network holds for VM `vm`'s NICs (by MAC):
    read before the VM is deleted, released after (release_reservations), so no lease outlives its NIC."""
    dom = host.lookup(vm)
    xml = dom.xml(inactive=True) if dom.is_persistent() else dom.xml()
    held: list[tuple[str, Reservation]] = []
    for name in vmdeck_networks(host, nic_networks(xml)):
        macs = {m.lower() for m in macs_on_network(xml, name)}
        held += [(name, r) for r in _view(host.conn.network(name)).reservations if r.mac.lower() in macs]
    return held


def release_reservations(host: Host, held: list[tuple[str, Reservation]]) -> None:
    """Take back leases reservations_of found (one already gone is no error)."""
    for name, reservation in held:
        with contextlib.suppress(VmdeckError):
            net = host.conn.network(name)
            net.remove_dhcp_host(reservation_xml(reservation), live=net.is_active())


def project_networks(host: Host, project: str | None) -> set[str]:
    """The networks vmdeck made for `project` on this host."""
    return {v.name for v in list_networks(host, project=project, admin=False)} if project else set()


def vmdeck_networks(host: Host, names: set[str]) -> set[str]:
    """Which of `names` are networks vmdeck made (their NICs get the clean-traffic filter)."""
    return {n for n in names if n != "user" and host.conn.has_network(n) and _view(host.conn.network(n)).vmdeck}

"""Virtual networks a project owns: their spec, libvirt's network XML, and back (core layer, pure).

A vmdeck network is an ordinary libvirt network (so `virsh net-list` shows it) whose `<metadata>`
names vmdeck's project. Modes are libvirt's forward modes, named as virt-manager and Cockpit name them:

- nat: the guests reach out through the host's address (masquerade); nothing reaches in;
- isolated: no forward at all: guests reach each other and the host's address on this bridge only;
- routed: the host routes the subnet (no NAT): the outside needs a route back to it;
- open: libvirt adds no firewall rules at all (the administrator's own rules decide).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

from lxml import etree

from vmdeck.errors import InvalidInput

__all__ = ["MODES", "NETWORK_NS", "NetworkSpec", "NetworkView", "Reservation", "network_xml", "parse_network",
           "check_network_name", "parse_range", "bridge_name", "make_spec", "reservation_xml",
           "nic_networks", "macs_on_network", "clean_traffic_nics"]

MODES = ("nat", "isolated", "routed", "open")
NETWORK_NS = "https://vmdeck.dev/xmlns/network/1"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")


@dataclass(frozen=True)
class Reservation:
    mac: str
    ip: str
    name: str | None = None


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    mode: str
    subnet: ipaddress.IPv4Network
    dhcp: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None
    project: str | None = None

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The host's address on the bridge: the subnet's first address."""
        return self.subnet.network_address + 1


@dataclass
class NetworkView:
    name: str
    mode: str  # one of MODES, or libvirt's own forward mode for networks vmdeck did not make
    subnet: str | None
    gateway: str | None
    dhcp: tuple[str, str] | None
    bridge: str | None
    project: str | None
    vmdeck: bool  # made by vmdeck (its metadata is there)
    reservations: list[Reservation] = field(default_factory=list)
    active: bool = False
    autostart: bool = False


def check_network_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"invalid network name {name!r}: 1-48 letters, digits, '.', '_' or '-', starting with a "
                           "letter or digit", field="name")
    return name


def bridge_name(name: str) -> str:
    """A bridge device name for network `name`: at most 15 characters (the kernel's IFNAMSIZ - 1)."""
    return "vd" + hashlib.sha256(name.encode()).hexdigest()[:10]


def parse_range(text: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    start, sep, end = text.partition("-")
    try:
        if not sep:
            raise ValueError("no '-'")
        return ipaddress.IPv4Address(start.strip()), ipaddress.IPv4Address(end.strip())
    except ValueError as err:
        raise InvalidInput(f"invalid DHCP range {text!r}: use FIRST-LAST, e.g. 10.20.0.100-10.20.0.200",
                           field="dhcp_range") from err


def make_spec(name: str, mode: str, subnet: str, dhcp_range: str | None, project: str | None) -> NetworkSpec:
    """A checked NetworkSpec; the DHCP range defaults to the upper half of the subnet."""
    check_network_name(name)
    if mode not in MODES:
        raise InvalidInput(f"unknown network mode {mode!r}: one of {', '.join(MODES)}", field="mode")
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as err:
        raise InvalidInput(f"invalid subnet {subnet!r}: an IPv4 network such as 10.20.0.0/24 ({err})",
                           field="subnet") from err
    if not net.is_private or net.is_loopback or net.is_link_local:
        raise InvalidInput(f"subnet {net} is not a private range (10/8, 172.16/12, 192.168/16)", field="subnet")
    if not 16 <= net.prefixlen <= 29:
        raise InvalidInput(f"subnet {net}: the prefix must be /16 to /29", field="subnet")
    gateway = net.network_address + 1
    if dhcp_range:
        first, last = parse_range(dhcp_range)
    else:
        first = net.network_address + net.num_addresses // 2
        last = net.broadcast_address - 1
    for address in (first, last):
        if address not in net or address in (net.network_address, net.broadcast_address, gateway):
            raise InvalidInput(f"DHCP range {first}-{last} must lie inside {net}, without its network, broadcast "
                               f"and gateway ({gateway}) addresses", field="dhcp_range")
    if int(first) > int(last):
        raise InvalidInput(f"DHCP range {first}-{last}: the first address comes after the last", field="dhcp_range")
    return NetworkSpec(name, mode, net, (first, last), project)


def network_xml(spec: NetworkSpec) -> str:
    root = etree.Element("network")
    etree.SubElement(root, "name").text = spec.name
    metadata = etree.SubElement(root, "metadata")
    mine = etree.SubElement(metadata, f"{{{NETWORK_NS}}}network", nsmap={"vmdeck": NETWORK_NS})
    if spec.project:
        mine.set("project", spec.project)
    mine.set("mode", spec.mode)
    if spec.mode == "nat":
        forward = etree.SubElement(root, "forward", mode="nat")
        etree.SubElement(forward, "nat")
    elif spec.mode in ("routed", "open"):
        etree.SubElement(root, "forward", mode="route" if spec.mode == "routed" else "open")
    etree.SubElement(root, "bridge", name=bridge_name(spec.name), stp="on", delay="0")
    ip = etree.SubElement(root, "ip", address=str(spec.gateway), netmask=str(spec.subnet.netmask))
    if spec.dhcp is not None:
        dhcp = etree.SubElement(ip, "dhcp")
        etree.SubElement(dhcp, "range", start=str(spec.dhcp[0]), end=str(spec.dhcp[1]))
    return etree.tostring(root, pretty_print=True, encoding="unicode")


def parse_network(xml: str, *, active: bool = False, autostart: bool = False) -> NetworkView:
    root = etree.fromstring(xml.encode())
    mine = root.find(f"metadata/{{{NETWORK_NS}}}network")
    forward = root.find("forward")
    libvirt_mode = forward.get("mode", "nat") if forward is not None else None
    mode = mine.get("mode") if mine is not None else {None: "isolated", "route": "routed"}.get(
        libvirt_mode, libvirt_mode or "isolated")
    ip = root.find("ip")
    subnet = gateway = None
    dhcp: tuple[str, str] | None = None
    reservations: list[Reservation] = []
    if ip is not None and ip.get("address"):
        gateway = ip.get("address")
        prefix = ip.get("prefix") or ip.get("netmask") or "24"
        subnet = str(ipaddress.IPv4Interface(f"{gateway}/{prefix}").network)
        found = ip.find("dhcp/range")
        if found is not None:
            dhcp = (found.get("start", ""), found.get("end", ""))
        reservations = [Reservation(h.get("mac", ""), h.get("ip", ""), h.get("name"))
                        for h in ip.iterfind("dhcp/host")]
    bridge = root.find("bridge")
    return NetworkView(name=root.findtext("name", ""), mode=mode or "isolated", subnet=subnet, gateway=gateway,
                       dhcp=dhcp, bridge=bridge.get("name") if bridge is not None else None,
                       project=mine.get("project") if mine is not None else None, vmdeck=mine is not None,
                       reservations=reservations, active=active, autostart=autostart)


def reservation_xml(reservation: Reservation) -> str:
    host = etree.Element("host", mac=reservation.mac, ip=reservation.ip)
    if reservation.name:
        host.set("name", reservation.name)
    return etree.tostring(host, encoding="unicode")


def _source_network(nic: etree._Element) -> str | None:
    source = nic.find("source")
    return source.get("network") if source is not None else None


def nic_networks(domain_xml: str) -> set[str]:
    """The libvirt networks the domain's NICs are on."""
    root = etree.fromstring(domain_xml.encode())
    return {n for n in (_source_network(nic) for nic in root.iterfind("devices/interface[@type='network']")) if n}


def macs_on_network(domain_xml: str, network: str) -> list[str]:
    """The MAC addresses of the domain's NICs on `network`."""
    root = etree.fromstring(domain_xml.encode())
    return [mac.get("address", "") for nic in root.iterfind("devices/interface[@type='network']")
            if _source_network(nic) == network for mac in nic.iterfind("mac")]


def clean_traffic_nics(xml: str, vmdeck_nets: set[str]) -> str:
    """Domain XML (or one <interface>) with libvirt's clean-traffic filter on every NIC of a vmdeck network."""
    if not vmdeck_nets:
        return xml
    root = etree.fromstring(xml.encode())
    changed = False
    nics = [root] if root.tag == "interface" else list(root.iterfind("devices/interface"))
    for nic in (n for n in nics if n.get("type") == "network"):
        source = nic.find("source")
        if source is not None and source.get("network") in vmdeck_nets and nic.find("filterref") is None:
            etree.SubElement(nic, "filterref", filter="clean-traffic")
            changed = True
    return etree.tostring(root, encoding="unicode") if changed else xml

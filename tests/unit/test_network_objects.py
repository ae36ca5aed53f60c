"""Virtual networks as objects, on libvirt's test driver: the XML vmdeck gives libvirt and reads back,
every bad input refused before anything exists, overlap and name conflicts, reservations, the
clean-traffic filter on NICs of vmdeck's networks, and who may join which network."""

from __future__ import annotations

from pathlib import Path

import pytest

from testdriver import open_test_host
from vmdeck.domxml.network import make_spec, network_xml, parse_network
from vmdeck.errors import Conflict, InvalidInput, NotFound
from vmdeck.host.connection import Host
from vmdeck.vm import networks


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return open_test_host(tmp_path)


def test_the_xml_round_trip() -> None:
    spec = make_spec("acme-net", "nat", "10.231.5.0/24", None, "acme")
    view = parse_network(network_xml(spec))
    assert (view.name, view.mode, view.subnet, view.gateway, view.dhcp, view.project, view.vmdeck) == \
        ("acme-net", "nat", "10.231.5.0/24", "10.231.5.1", ("10.231.5.128", "10.231.5.254"), "acme", True)
    assert len(view.bridge or "") <= 15
    isolated = network_xml(make_spec("lab", "isolated", "192.168.77.0/28", "192.168.77.2-192.168.77.6", None))
    assert "<forward" not in isolated and parse_network(isolated).dhcp == ("192.168.77.2", "192.168.77.6")
    assert '<forward mode="route"/>' in network_xml(make_spec("r", "routed", "172.20.0.0/16", None, None))


@pytest.mark.parametrize(("mode", "subnet", "dhcp", "field"), [
    ("bridge", "10.231.5.0/24", None, "mode"),
    ("nat", "8.8.8.0/24", None, "subnet"),  # not private
    ("nat", "10.231.5.1/24", None, "subnet"),  # host bits set
    ("nat", "10.0.0.0/8", None, "subnet"),  # too large
    ("nat", "10.231.5.0/24", "10.231.6.10-10.231.6.20", "dhcp_range"),  # outside the subnet
    ("nat", "10.231.5.0/24", "10.231.5.1-10.231.5.20", "dhcp_range"),  # includes the gateway
    ("nat", "10.231.5.0/24", "10.231.5.50-10.231.5.20", "dhcp_range"),  # backwards
    ("nat", "10.231.5.0/24", "10.231.5.50", "dhcp_range"),  # not a range
])
def test_bad_input_is_refused_before_anything_exists(host: Host, mode: str, subnet: str, dhcp: str | None,
                                                     field: str) -> None:
    before = {n.name for n in networks.list_networks(host)}
    with pytest.raises(InvalidInput) as refused:
        networks.create_network(host, "bad", mode=mode, subnet=subnet, dhcp_range=dhcp)
    assert refused.value.field == field
    assert {n.name for n in networks.list_networks(host)} == before


def test_create_list_overlap_delete(host: Host) -> None:
    made = networks.create_network(host, "acme-net", subnet="10.231.5.0/24", project="acme")
    assert made.active and made.autostart and made.project == "acme"
    with pytest.raises(Conflict, match="overlaps network 'acme-net'"):
        networks.create_network(host, "other", subnet="10.231.5.128/25")
    with pytest.raises(Conflict, match="already exists"):
        networks.create_network(host, "acme-net", subnet="10.231.6.0/24")
    assert [v.name for v in networks.list_networks(host, project="acme", admin=False)] == ["acme-net"]
    assert networks.list_networks(host, project="other", admin=False) == []
    with pytest.raises(NotFound, match="no network named 'acme-net'"):
        networks.show_network(host, "acme-net", project="other", admin=False)
    networks.delete_network(host, "acme-net")
    assert "acme-net" not in {n.name for n in networks.list_networks(host)}


def test_a_projects_networks(host: Host) -> None:
    networks.create_network(host, "acme-net", subnet="10.231.7.0/24", project="acme")
    networks.create_network(host, "shared-net", subnet="10.231.9.0/24")
    assert networks.project_networks(host, "acme") == {"acme-net"}
    assert networks.project_networks(host, "other") == set()
    assert networks.project_networks(host, None) == set()


def test_nics_on_vmdeck_networks_get_clean_traffic() -> None:
    domain = ("<domain><devices><interface type='network'><source network='acme-net'/></interface>"
              "<interface type='network'><source network='default'/></interface>"
              "<interface type='user'/></devices></domain>")
    out = networks.clean_traffic_nics(domain, {"acme-net"})
    assert out.count("clean-traffic") == 1 and out.index("clean-traffic") < out.index("default")
    nic = "<interface type='network'><source network='acme-net'/><model type='virtio'/></interface>"
    assert "filterref filter=\"clean-traffic\"" in networks.clean_traffic_nics(nic, {"acme-net"})
    assert networks.clean_traffic_nics(nic, set()) == nic


def test_a_reservation_and_a_network_in_use(host: Host, tmp_path: Path) -> None:
    networks.create_network(host, "lab", mode="isolated", subnet="10.231.8.0/24", dhcp_range="10.231.8.10-10.231.8.11")
    xml = ("<domain type='test'><name>web</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
           "<os><type arch='x86_64'>hvm</type></os><devices><interface type='network'>"
           "<mac address='52:54:00:aa:bb:01'/><source network='lab'/></interface></devices></domain>")
    host.conn.define(xml)
    first = networks.reserve(host, "lab", "web")
    assert (first.mac, first.ip) == ("52:54:00:aa:bb:01", "10.231.8.10")
    assert networks.show_network(host, "lab").reservations[0].ip == "10.231.8.10"
    with pytest.raises(Conflict, match="already has a reservation"):
        networks.reserve(host, "lab", "web")
    with pytest.raises(Conflict, match="used by VM\\(s\\) web"):
        networks.delete_network(host, "lab")
    with pytest.raises(NotFound, match="no NIC on network"):
        networks.reserve(host, "lab", "busy")

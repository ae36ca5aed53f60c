"""XML -> spec -> XML must not drop what vmdeck does not model: hand edits survive vmdeck's edits."""

from __future__ import annotations

from pathlib import Path

import libvirt
from lxml import etree

from testdriver import open_test_host
from vmdeck.domxml.edit import set_resources
from vmdeck.domxml.parse import machine_family, parse_domain
from vmdeck.domxml.render import RenderContext, render_domain
from vmdeck.spec.templates import resolve

# What a user might add with `virsh edit` or virt-xml: elements vmdeck has no model for.
HAND_EDITS = {
    "description": "<description>billing: team-a</description>",
    "watchdog": "<watchdog model='i6300esb' action='reset'/>",
    "clock-timer": "<timer name='rtc' tickpolicy='catchup'/>",
}


def _hand_edited_xml() -> str:
    spec = resolve("q35-virtio", "edited")
    xml = render_domain(spec, RenderContext(domain_type="qemu", disk_paths=(Path("/pool/edited-vda.qcow2"),),
                                            owned_volumes=(Path("/pool/edited-vda.qcow2"),)))
    root = etree.fromstring(xml.encode())
    root.find("name").addnext(etree.fromstring(HAND_EDITS["description"]))
    root.find("devices").append(etree.fromstring(HAND_EDITS["watchdog"]))
    root.find("clock").append(etree.fromstring(HAND_EDITS["clock-timer"]))
    return etree.tostring(root, encoding="unicode")


def _canonical(xml: str) -> str:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(xml.encode(), parser), method="c14n").decode()


def test_parse_reads_back_what_render_wrote() -> None:
    view = parse_domain(_hand_edited_xml())
    assert (view.name, view.vcpus, view.memory_mib, view.machine, view.template) == (
        "edited", 2, 2048, "q35", "q35-virtio")
    assert [(d.target, d.bus, d.device, d.owned) for d in view.disks] == [
        ("vda", "virtio", "disk", True), ("sda", "sata", "cdrom", False)]
    assert view.nics[0].model == "virtio" and view.nics[0].kind == "user"


def test_no_op_edit_keeps_the_document_identical() -> None:
    xml = _hand_edited_xml()
    assert _canonical(set_resources(xml)) == _canonical(xml)


def test_resource_edit_changes_only_vcpus_and_memory() -> None:
    before = _hand_edited_xml()
    after = set_resources(before, vcpus=3, memory_mib=1024)
    view = parse_domain(after)
    assert (view.vcpus, view.memory_mib, view.current_memory_mib) == (3, 1024, 1024)
    for fragment in ("billing: team-a", "i6300esb", "tickpolicy"):
        assert fragment in after
    # Everything but the three edited elements is unchanged.
    strip = etree.XMLParser(remove_blank_text=True)
    old, new = etree.fromstring(before.encode(), strip), etree.fromstring(after.encode(), strip)
    for root in (old, new):
        for tag in ("vcpu", "memory", "currentMemory"):
            root.remove(root.find(tag))
    assert etree.tostring(old, method="c14n") == etree.tostring(new, method="c14n")


def test_hand_edits_survive_a_round_trip_through_libvirt(tmp_path: Path) -> None:
    with open_test_host(tmp_path) as host:
        dom = host.conn.raw.defineXMLFlags(_hand_edited_xml(), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        edited = set_resources(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), vcpus=4)
        dom = host.conn.raw.defineXML(edited)
        final = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert parse_domain(final).vcpus == 4
    for fragment in ("billing: team-a", "i6300esb", "tickpolicy", "vmdeck:owned-volume"):
        assert fragment in final


def test_machine_families_read_libvirt_expanded_names() -> None:
    assert [machine_family(m) for m in ("pc-q35-7.2", "pc-i440fx-7.2", "pc", "virt-7.2", "q35")] == [
        "q35", "pc", "pc", "virt", "q35"]

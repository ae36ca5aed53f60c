"""Boot order edits of existing domain XML (vmdeck.domxml.edit.set_boot_order), and the API on the test driver."""

from __future__ import annotations

import pytest
from lxml import etree

from vmdeck.domxml.edit import set_boot_order
from vmdeck.domxml.parse import parse_domain

XML = """<domain type='kvm'><name>a</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='q35'>hvm</type><loader readonly='yes'>/x.fd</loader><boot dev='hd'/></os>
<devices><disk type='file' device='disk'><source file='/a.qcow2'/><target dev='vda' bus='virtio'/><boot order='1'/></disk>
<interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface></devices>
<metadata><x:keep xmlns:x='urn:other'>kept</x:keep></metadata></domain>"""


def test_order_replaces_both_kinds_of_boot_elements_and_keeps_the_rest() -> None:
    edited = set_boot_order(XML, ["cdrom", "hd", "network"])
    root = etree.fromstring(edited.encode())
    assert [b.get("dev") for b in root.iterfind("os/boot")] == ["cdrom", "hd", "network"]
    assert root.find("devices/disk/boot") is None  # libvirt refuses both kinds at once
    assert [child.tag for child in root.find("os")][:2] == ["type", "loader"]
    assert "kept" in edited and "/x.fd" in edited
    assert parse_domain(edited).boot_order == ("cdrom", "hd", "network")


@pytest.mark.parametrize("order", [[], ["floppy"], ["hd", "hd"]])
def test_bad_orders_are_refused(order: list[str]) -> None:
    with pytest.raises(ValueError):
        set_boot_order(XML, order)

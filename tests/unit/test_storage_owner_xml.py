"""The owner and mode vmdeck asks libvirt to give a file or folder it makes on a host, and reads back (pure)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from vmdeck.domxml.storage import pool_xml, volume_format_of, volume_owner_of, volume_xml


def test_volume_owner_round_trips_through_the_xml() -> None:
    xml = volume_xml("tpm2-00.permall", 4096, "raw", (103, 112, 0o600))
    perms = etree.fromstring(xml.encode()).find("target/permissions")
    assert perms is not None and perms.findtext("mode") == "0600" and perms.findtext("owner") == "103"
    assert volume_owner_of(xml) == (103, 112, 0o600)
    assert volume_format_of(xml) == ("raw", "")
    assert volume_format_of(volume_xml("d.qcow2", 2**30, "qcow2")) == ("qcow2", "1.1")


def test_without_an_owner_libvirt_decides() -> None:
    assert volume_owner_of(volume_xml("seed.iso", 4096, "raw")) is None
    assert "permissions" not in pool_xml("p", Path("/var/lib/x"))
    folder = etree.fromstring(pool_xml("p", Path("/var/lib/x"), (103, 112, 0o700)).encode())
    assert folder.findtext("target/permissions/mode") == "0700"
    assert folder.findtext("target/permissions/group") == "112"

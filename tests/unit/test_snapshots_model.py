"""The snapshot tree (pure) and its round trip through vmdeck's domain metadata."""

from __future__ import annotations

import pytest
from lxml import etree

from vmdeck.domxml.snapshots import metadata_with_tree, read_tree, set_disk_sources, tree_from_metadata, write_tree
from vmdeck.errors import Conflict, InvalidInput, NotFound
from vmdeck.vm.snapshots import SnapshotRecord, SnapshotTree, check_snapshot_name

DOMAIN = """<domain type='qemu'><name>web1</name><metadata>
<vmdeck:vm xmlns:vmdeck="https://vmdeck.dev/xmlns/vm/1"><vmdeck:template>tiny</vmdeck:template>
<vmdeck:owned-volume>/pool/web1-vda.qcow2</vmdeck:owned-volume></vmdeck:vm></metadata>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/pool/web1-vda.qcow2'/>
<backingStore/><target dev='vda' bus='virtio'/></disk>
<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='sda' bus='scsi'/><readonly/></disk>
</devices></domain>"""


def _snap(name: str, parent: str | None, created: str, image: str) -> SnapshotRecord:
    return SnapshotRecord(name=name, created=created, parent=parent, state="shut off", disks=(("vda", image),))


def _tree() -> SnapshotTree:
    tree = SnapshotTree().add(_snap("s1", None, "1", "/pool/base"), ("/pool/ov1",))
    tree = tree.add(_snap("s2", "s1", "2", "/pool/ov1"), ("/pool/ov2",))
    return tree.add(_snap("s3", "s1", "3", "/pool/ov3"), ("/pool/ov4",))


def test_names_are_checked_whole() -> None:
    assert check_snapshot_name("before-upgrade_1.0") == "before-upgrade_1.0"
    for bad in ("a/b", "../x", "", "-x", "a b", "x" * 65, "ok\n"):
        with pytest.raises(InvalidInput):
            check_snapshot_name(bad)


def test_tree_shape_current_and_display() -> None:
    tree = _tree()
    assert tree.current == "s3"
    assert [s.name for s in tree.children("s1")] == ["s2", "s3"]
    assert [(prefix, s.name) for prefix, s in tree.lines()] == [("", "s1"), ("├─ ", "s2"), ("└─ ", "s3")]
    with pytest.raises(Conflict):
        tree.add(_snap("s2", None, "4", "/x"))
    with pytest.raises(NotFound, match="s1, s2, s3"):
        tree.get("nope")


def test_deleting_a_middle_snapshot_reparents_its_children() -> None:
    tree = _tree().without("s1")
    assert {s.name: s.parent for s in tree.snapshots} == {"s2": None, "s3": None}
    assert tree.without("s3").current is None
    merged = tree.replace_image("/pool/ov1", "/pool/base")
    assert merged.get("s2").frozen("vda") == "/pool/base"


def test_metadata_round_trip_keeps_other_fields() -> None:
    tree = _tree()
    xml = write_tree(DOMAIN, tree, owned_add=("/pool/ov1",))
    assert read_tree(xml) == tree
    root = etree.fromstring(xml.encode())
    ns = {"v": "https://vmdeck.dev/xmlns/vm/1"}
    assert root.findtext("metadata/v:vm/v:template", namespaces=ns) == "tiny"
    assert [e.text for e in root.findall("metadata/v:vm/v:owned-volume", ns)] == ["/pool/web1-vda.qcow2",
                                                                                "/pool/ov1"]
    # The form getMetadata returns: no namespace on the elements.
    plain = metadata_with_tree("<vm><template>tiny</template></vm>", tree, owned_remove=())
    assert tree_from_metadata(etree.fromstring(plain.encode())) == tree
    emptied = write_tree(xml, SnapshotTree(), owned_remove=("/pool/ov1",))
    assert read_tree(emptied) == SnapshotTree() and "/pool/ov1" not in emptied


def test_disk_sources_change_only_the_named_disks() -> None:
    xml = set_disk_sources(DOMAIN, {"vda": "/pool/ov9"})
    root = etree.fromstring(xml.encode())
    disk, cdrom = root.findall("devices/disk")
    assert disk.find("source").get("file") == "/pool/ov9" and disk.find("backingStore") is None
    assert cdrom.find("source") is None

"""vmdeck's snapshot records in the domain's metadata, and disk-source edits for snapshots (pure).

The records live inside vmdeck's own metadata element (namespace VMDECK_NS),
next to the owned-volume list, so they travel with the domain definition:

    <vmdeck:vm>
      <vmdeck:owned-volume>/var/lib/vmdeck/pool/web1-vda.qcow2</vmdeck:owned-volume>
      <vmdeck:snapshots current="s1">
        <vmdeck:snapshot name="s1" created="..." state="running" parent="">
          <vmdeck:disk target="vda" image="/var/lib/vmdeck/pool/web1-vda.qcow2"/>
        </vmdeck:snapshot>
        <vmdeck:file>/var/lib/vmdeck/pool/web1-vda-ov-1a2b3c.qcow2</vmdeck:file>
      </vmdeck:snapshots>
    </vmdeck:vm>
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from vmdeck.domxml.names import VMDECK_NS
from vmdeck.vm.snapshots import SnapshotRecord, SnapshotTree

__all__ = ["nvram_path", "NVRAM_DIR", "read_tree", "write_tree", "tree_from_metadata", "metadata_with_tree", "set_disk_sources",
           "drop_snapshots_and_owned", "NS", "overlay_volume_xml", "snapshot_xml", "clone_domain_xml"]

NS = {"v": VMDECK_NS}
# Where libvirt's system QEMU driver keeps per-VM UEFI variable stores it makes itself.
NVRAM_DIR = "/var/lib/libvirt/qemu/nvram"
_Q = f"{{{VMDECK_NS}}}"


def _snapshots_element(meta: etree._Element | None) -> etree._Element | None:
    if meta is None:
        return None
    found = meta.find("v:snapshots", NS)
    return found if found is not None else meta.find("snapshots")  # setMetadata may drop the prefix


def nvram_path(domain_xml: str) -> str | None:
    """A UEFI VM's variable store: the <nvram> path, or libvirt's default for firmware='efi' (libvirt 9.0
    fills the path into the live XML only, so the configuration of a VM never started has none)."""
    root = etree.fromstring(domain_xml.encode())
    nvram = root.find("os/nvram")
    if nvram is not None and nvram.text and nvram.text.strip():
        return nvram.text.strip()
    loader = root.find("os/loader")
    if root.find("os") is not None and (root.find("os").get("firmware") == "efi"  # type: ignore[union-attr]
                                        or (loader is not None and loader.get("type") == "pflash")):
        return f"{NVRAM_DIR}/{root.findtext('name', '')}_VARS.fd"
    return None


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def tree_from_metadata(meta: etree._Element | None) -> SnapshotTree:
    element = _snapshots_element(meta)
    if element is None:
        return SnapshotTree()
    snaps = []
    files = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if _local(child) == "file" and child.text:
            files.append(child.text)
        elif _local(child) == "snapshot":
            disks = tuple((d.get("target", ""), d.get("image", "")) for d in child if isinstance(d.tag, str)
                          and _local(d) == "disk")
            snaps.append(SnapshotRecord(
                name=child.get("name", ""), created=child.get("created", ""), parent=child.get("parent") or None,
                state=child.get("state", "shut off"), disks=disks, description=child.get("description", ""),
                memory=child.get("memory") or None, nvram=child.get("nvram") or None,
                quiesced=child.get("quiesced") == "yes"))
    return SnapshotTree(tuple(snaps), element.get("current") or None, tuple(files))


def _tree_element(tree: SnapshotTree, q: str) -> etree._Element:
    # `q` is the namespace prefix of the surrounding metadata: "{ns}" in a whole domain XML,
    # "" in the element getMetadata returns (libvirt strips the namespace there).
    element = etree.Element(f"{q}snapshots", nsmap={"vmdeck": VMDECK_NS} if q else None)
    element.set("current", tree.current or "")
    for snap in tree.snapshots:
        record = etree.SubElement(element, f"{q}snapshot", name=snap.name, created=snap.created,
                                  parent=snap.parent or "", state=snap.state)
        for key, value in (("description", snap.description), ("memory", snap.memory), ("nvram", snap.nvram)):
            if value:
                record.set(key, value)
        if snap.quiesced:
            record.set("quiesced", "yes")
        for target, image in snap.disks:
            etree.SubElement(record, f"{q}disk", target=target, image=image)
    for path in tree.created_files:
        etree.SubElement(element, f"{q}file").text = path
    return element


def metadata_with_tree(meta_xml: str | None, tree: SnapshotTree, owned_add: tuple[str, ...] = (),
                       owned_remove: tuple[str, ...] = ()) -> str:
    """vmdeck's metadata element (as getMetadata returns it) with the tree and owned volumes updated."""
    meta = etree.fromstring(meta_xml.encode()) if meta_xml else etree.Element(f"{_Q}vm", nsmap={"vmdeck": VMDECK_NS})
    old = _snapshots_element(meta)
    if old is not None:
        meta.remove(old)
    prefix = _Q if meta.tag.startswith("{") else ""
    for owned in list(meta):
        if isinstance(owned.tag, str) and _local(owned) == "owned-volume" and owned.text in owned_remove:
            meta.remove(owned)
    present = {e.text for e in meta if isinstance(e.tag, str) and _local(e) == "owned-volume"}
    for path in owned_add:
        if path not in present:
            etree.SubElement(meta, f"{prefix}owned-volume").text = path
    if tree.snapshots or tree.created_files:
        meta.append(_tree_element(tree, prefix))
    return etree.tostring(meta, encoding="unicode")


def read_tree(domain_xml: str) -> SnapshotTree:
    root = etree.fromstring(domain_xml.encode())
    return tree_from_metadata(root.find("metadata/v:vm", NS))


def write_tree(domain_xml: str, tree: SnapshotTree, owned_add: tuple[str, ...] = (),
               owned_remove: tuple[str, ...] = ()) -> str:
    """The whole domain XML with vmdeck's metadata updated (for defineXML of a shut-off VM)."""
    root = etree.fromstring(domain_xml.encode())
    metadata = root.find("metadata")
    if metadata is None:
        metadata = etree.Element("metadata")
        name = root.find("name")
        (name.addnext(metadata) if name is not None else root.insert(0, metadata))
    meta = metadata.find("v:vm", NS)
    new = etree.fromstring(metadata_with_tree(etree.tostring(meta, encoding="unicode") if meta is not None else None,
                                              tree, owned_add, owned_remove).encode())
    if meta is not None:
        metadata.replace(meta, new)
    else:
        metadata.append(new)
    return etree.tostring(root, encoding="unicode")


def set_disk_sources(domain_xml: str, sources: dict[str, str], fmt: str = "qcow2") -> str:
    """Point disks (by target) at new image files; libvirt re-reads their backing chains itself."""
    root = etree.fromstring(domain_xml.encode())
    for disk in root.iterfind("devices/disk"):
        target = disk.find("target")
        dev = target.get("dev") if target is not None else None
        if dev not in sources:
            continue
        source = disk.find("source")
        if source is None:
            source = etree.SubElement(disk, "source")
        for key in list(source.attrib):
            del source.attrib[key]
        disk.set("type", "file")
        source.set("file", sources[dev])
        for stale in disk.findall("backingStore"):  # the old chain: libvirt probes the new one
            disk.remove(stale)
        driver = disk.find("driver")
        if driver is not None:
            driver.set("type", fmt)
    return etree.tostring(root, encoding="unicode")


def drop_snapshots_and_owned(domain_xml: str) -> str:
    """A copy of a domain's XML without vmdeck's snapshot records and owned volumes (the start of a clone)."""
    root = etree.fromstring(domain_xml.encode())
    meta = root.find("metadata/v:vm", NS)
    if meta is not None:
        for child in list(meta):
            if isinstance(child.tag, str) and _local(child) in ("snapshots", "owned-volume"):
                meta.remove(child)
    return etree.tostring(root, encoding="unicode")


def overlay_volume_xml(name: str, capacity: int, backing: str, backing_format: str) -> str:
    """A storage volume: a thin qcow2 overlay whose backing file is `backing`."""
    root = etree.Element("volume")
    etree.SubElement(root, "name").text = name
    etree.SubElement(root, "capacity", unit="bytes").text = str(capacity)
    etree.SubElement(root, "allocation", unit="bytes").text = "0"
    target = etree.SubElement(root, "target")
    etree.SubElement(target, "format", type="qcow2")
    etree.SubElement(target, "compat").text = "1.1"  # v3: holds the dirty bitmaps of incremental backups
    store = etree.SubElement(root, "backingStore")
    etree.SubElement(store, "path").text = backing
    etree.SubElement(store, "format", type=backing_format)
    return etree.tostring(root, encoding="unicode")


def snapshot_xml(snap: str, description: str, overlays: dict[str, str], skipped: list[str],
                 memory_file: str | None) -> str:
    """<domainsnapshot> for libvirt: external overlays for `overlays` (target -> file), none for `skipped`."""
    root = etree.Element("domainsnapshot")
    etree.SubElement(root, "name").text = snap
    if description:
        etree.SubElement(root, "description").text = description
    if memory_file:
        etree.SubElement(root, "memory", snapshot="external", file=memory_file)
    disks = etree.SubElement(root, "disks")
    for target, path in overlays.items():
        element = etree.SubElement(disks, "disk", name=target, snapshot="external", type="file")
        etree.SubElement(element, "driver", type="qcow2")
        etree.SubElement(element, "source", file=path)
    for target in skipped:
        etree.SubElement(disks, "disk", name=target, snapshot="no")
    return etree.tostring(root, encoding="unicode")


def clone_domain_xml(xml: str, source: str, new: str, disks: dict[str, str], owned: list[str],
                     seeds: dict[str, str], nvram: str | None) -> str:
    """The definition of a clone: new name, no UUID or MACs (libvirt makes them), its own disks, seed,
    serial log and NVRAM, no snapshots; its owned volumes are the files made for it."""
    root = etree.fromstring(drop_snapshots_and_owned(xml).encode())
    name = root.find("name")
    if name is not None:
        name.text = new
    for element in root.findall("uuid"):
        root.remove(element)
    for nic in root.findall("devices/interface"):
        for mac in nic.findall("mac"):
            nic.remove(mac)
    for log in root.findall("devices/serial/log"):
        if log.get("file"):
            log.set("file", str(Path(log.get("file", "")).with_name(f"{new}-serial.log")))
    for disk in root.iterfind("devices/disk"):
        target = disk.find("target")
        source_el = disk.find("source")
        if target is not None and source_el is not None and target.get("dev") in seeds:
            source_el.set("file", seeds[target.get("dev", "")])
    os_el = root.find("os")
    nvram_el = os_el.find("nvram") if os_el is not None else None
    if os_el is not None and nvram_el is not None:
        if nvram:
            nvram_el.text = nvram
        else:
            os_el.remove(nvram_el)  # libvirt makes a fresh one from its template
    meta = root.find("metadata/v:vm", NS)
    if meta is not None:
        etree.SubElement(meta, f"{_Q}cloned-from").text = source
    out = set_disk_sources(etree.tostring(root, encoding="unicode"), disks)
    return write_tree(out, SnapshotTree(created_files=tuple(owned)), owned_add=tuple(owned))

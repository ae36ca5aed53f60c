"""XML for backups: libvirt's <domainbackup> and <domaincheckpoint>, and a restored VM's definition (pure)."""

from __future__ import annotations

from lxml import etree

from vmdeck.domxml.snapshots import _Q, NS, clone_domain_xml, drop_snapshots_and_owned, set_disk_sources, write_tree
from vmdeck.vm.snapshots import SnapshotTree

__all__ = ["backup_xml", "checkpoint_xml", "restored_domain_xml", "new_vm_xml"]


def backup_xml(targets: dict[str, str], skipped: list[str], incremental_from: str | None) -> str:
    """A push-mode backup: each disk in `targets` (target -> file to write, qcow2); `skipped` disks are left out.

    libvirt creates the files; an incremental one holds only the clusters changed since the checkpoint
    `incremental_from`, with the live disk as its backing file (rebased afterwards)."""
    root = etree.Element("domainbackup", mode="push")
    if incremental_from:
        etree.SubElement(root, "incremental").text = incremental_from
    disks = etree.SubElement(root, "disks")
    for target, path in targets.items():
        disk = etree.SubElement(disks, "disk", name=target, backup="yes", type="file")
        etree.SubElement(disk, "target", file=path)
        etree.SubElement(disk, "driver", type="qcow2")
    for target in skipped:
        etree.SubElement(disks, "disk", name=target, backup="no")
    return etree.tostring(root, encoding="unicode")


def checkpoint_xml(name: str, targets: list[str], skipped: list[str]) -> str:
    """A checkpoint: a dirty bitmap on each of `targets`, from which the next incremental starts."""
    root = etree.Element("domaincheckpoint")
    etree.SubElement(root, "name").text = name
    disks = etree.SubElement(root, "disks")
    for target in targets:
        etree.SubElement(disks, "disk", name=target, checkpoint="bitmap")
    for target in skipped:
        etree.SubElement(disks, "disk", name=target, checkpoint="no")
    return etree.tostring(root, encoding="unicode")


def restored_domain_xml(xml: str, disks: dict[str, str], seeds: dict[str, str], owned: list[str],
                        nvram: str | None, backup_id: str) -> str:
    """The backed-up definition on restored files: same name, UUID and MACs; no snapshots (their images
    were not backed up: the backup holds the present state only); `owned` are the files made for it."""
    root = etree.fromstring(drop_snapshots_and_owned(xml).encode())
    for disk in root.iterfind("devices/disk"):
        target = disk.find("target")
        source = disk.find("source")
        if target is not None and source is not None and target.get("dev") in seeds:
            source.set("file", seeds[target.get("dev", "")])
    os_el = root.find("os")
    nvram_el = os_el.find("nvram") if os_el is not None else None
    if nvram and os_el is not None:
        if nvram_el is None:
            nvram_el = etree.SubElement(os_el, "nvram")
        nvram_el.text = nvram
    meta = root.find("metadata/v:vm", NS)
    if meta is not None:
        etree.SubElement(meta, f"{_Q}restored-from").text = backup_id
    out = set_disk_sources(etree.tostring(root, encoding="unicode"), disks)
    return write_tree(out, SnapshotTree(created_files=tuple(owned)), owned_add=tuple(owned))


def new_vm_xml(xml: str, source: str, new: str, disks: dict[str, str], seeds: dict[str, str], owned: list[str],
               nvram: str | None) -> str:
    """A restore as a new VM: a clone's definition (new name, UUID and MACs from libvirt, own serial log)."""
    return clone_domain_xml(xml, source, new, disks, owned, seeds, nvram)

"""Find and rewrite single devices inside domain XML (pure: strings in, strings out).

Device operations (vm/devices.py, vm/media.py) hand libvirt one device's XML
at a time: the exact element found in the domain, so that attach/detach/update
match what libvirt has (its aliases and addresses included), and nothing the
user set on that device by hand is lost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lxml import etree

from vmdeck.domxml.parse import disk_source

__all__ = [
    "DeviceRow",
    "find_disk",
    "find_nic",
    "disk_targets",
    "macs",
    "with_media",
    "has_scsi_controller",
    "free_root_ports",
    "add_root_ports",
    "random_mac",
    "device_rows",
    "input_types",
    "volume_format",
    "with_owned_volume",
]


def _root(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode())


def _dump(element: etree._Element) -> str:
    # tail= None: the whitespace after the element belongs to its parent, not to the device.
    copy = etree.fromstring(etree.tostring(element))
    copy.tail = None
    return etree.tostring(copy, encoding="unicode")


def _disk(root: etree._Element, target: str) -> etree._Element | None:
    for disk in root.iterfind("devices/disk"):
        element = disk.find("target")
        if element is not None and element.get("dev") == target:
            return disk
    return None


def find_disk(xml: str, target: str) -> str | None:
    """The <disk> element whose target is `target` (vdb, sda ...), serialised, or None."""
    disk = _disk(_root(xml), target)
    return _dump(disk) if disk is not None else None


def _nic(root: etree._Element, mac: str) -> etree._Element | None:
    for nic in root.iterfind("devices/interface"):
        element = nic.find("mac")
        if element is not None and element.get("address", "").lower() == mac.lower():
            return nic
    return None


def find_nic(xml: str, mac: str) -> str | None:
    """The <interface> element with MAC address `mac` (any case), serialised, or None."""
    nic = _nic(_root(xml), mac)
    return _dump(nic) if nic is not None else None


def disk_targets(xml: str) -> list[str]:
    return [t.get("dev", "") for t in _root(xml).iterfind("devices/disk/target")]


def macs(xml: str) -> list[str]:
    return [m.get("address", "").lower() for m in _root(xml).iterfind("devices/interface/mac")]


def with_media(disk_xml: str, iso: str | None) -> str:
    """A CD-ROM <disk> with `iso` inserted (None: ejected); everything else kept."""
    disk = _root(disk_xml)
    source = disk.find("source")
    if source is not None:
        disk.remove(source)
    if iso is not None:
        source = etree.Element("source", file=iso)
        driver = disk.find("driver")
        # libvirt expects <source> right after <driver>; keep the order a human would write.
        if driver is not None:
            driver.addnext(source)
        else:
            disk.insert(0, source)
        if driver is not None and not driver.get("type"):
            driver.set("type", "raw")
    disk.set("type", "file")
    for stale in disk.findall("backingStore"):
        disk.remove(stale)
    return _dump(disk)


def has_scsi_controller(xml: str) -> bool:
    controllers = _root(xml).iterfind("devices/controller[@type='scsi']")
    return any(c.get("model", "").startswith("virtio-scsi") for c in controllers)


def free_root_ports(xml: str) -> int:
    """PCIe root ports that no device sits behind: each can take one hot-plugged device."""
    root = _root(xml)
    ports = {c.get("index") for c in root.iterfind("devices/controller[@type='pci'][@model='pcie-root-port']")}
    used = set()
    for address in root.iterfind("devices//address[@type='pci']"):
        bus = address.get("bus")
        if bus is not None:
            used.add(str(int(bus, 16)) if bus.startswith("0x") else bus)
    return len(ports - used)


def add_root_ports(xml: str, count: int) -> str:
    """`count` more empty pcie-root-port controllers (libvirt numbers and places them)."""
    root = _root(xml)
    devices = root.find("devices")
    if devices is None:
        devices = etree.SubElement(root, "devices")
    for _ in range(count):
        etree.SubElement(devices, "controller", type="pci", model="pcie-root-port")
    return etree.tostring(root, encoding="unicode")


def random_mac(taken: list[str] | tuple[str, ...] = ()) -> str:
    """A MAC in QEMU's locally administered range 52:54:00, not one already in `taken`."""
    while True:
        mac = "52:54:00:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))
        if mac not in taken:
            return mac


@dataclass(frozen=True)
class DeviceRow:
    kind: str  # "disk" | "cdrom" | "nic"
    key: str  # target (disks) or MAC (NICs)
    bus: str  # disk bus or NIC model
    source: str | None  # image path, network name
    status: str  # "live" | "pending add" | "pending removal" | "config" (VM not running)


def _rows(xml: str) -> dict[tuple[str, str], tuple[str, str, str | None]]:
    root = _root(xml)
    rows: dict[tuple[str, str], tuple[str, str, str | None]] = {}
    for disk in root.iterfind("devices/disk"):
        target = disk.find("target")
        path = disk_source(disk)
        kind = "cdrom" if disk.get("device") == "cdrom" else disk.get("device", "disk")
        if target is not None:
            rows[(kind, target.get("dev", ""))] = (kind, target.get("bus", ""), path)
    for nic in root.iterfind("devices/interface"):
        mac, model, source = (nic.find(t) for t in ("mac", "model", "source"))
        if mac is None:
            continue
        network = (source.get("network") or source.get("bridge")) if source is not None else None
        rows[("nic", mac.get("address", "").lower())] = (
            "nic", model.get("type", "") if model is not None else "", network or nic.get("type", "")
        )
    return rows


def device_rows(config_xml: str, live_xml: str | None) -> list[DeviceRow]:
    """Disks, CD-ROMs and NICs with their status: in the running VM, only in its config, or both.

    `live_xml` is None for a VM that is not running: every device is then "config".
    For a CD-ROM the live media is shown; a cold media change is not tracked as pending.
    """
    config = _rows(config_xml)
    if live_xml is None:
        return [DeviceRow(kind, key, bus, source, "config") for (kind, key), (_k, bus, source) in config.items()]
    live = _rows(live_xml)
    result = []
    for (kind, key), (_k, bus, source) in live.items():
        result.append(DeviceRow(kind, key, bus, source, "live" if (kind, key) in config else "pending removal"))
    for (kind, key), (_k, bus, source) in config.items():
        if (kind, key) not in live:
            result.append(DeviceRow(kind, key, bus, source, "pending add"))
    return result


def input_types(xml: str) -> set[str]:
    """The kinds of input device a domain has: "tablet", "mouse", "keyboard"."""
    return {i.get("type", "") for i in _root(xml).iterfind("devices/input")}


def volume_format(volume_xml: str) -> str | None:
    """A storage volume's image format from libvirt's volume XML, as a disk's driver names it (iso reads raw)."""
    fmt = _root(volume_xml).find("target/format")
    kind = fmt.get("type") if fmt is not None else None
    if not kind:
        return None
    return "raw" if kind == "iso" else kind


def with_owned_volume(metadata_xml: str | None, *, add: str | None = None, remove: str | None = None) -> str:
    """vmdeck's metadata element with one owned-volume record added or dropped, every other field kept.

    `metadata_xml` is what libvirt returns for vmdeck's namespace (None: a VM vmdeck did not create).
    """
    root = _root(metadata_xml) if metadata_xml is not None else etree.Element("vm")
    for element in root.findall("owned-volume"):
        if element.text in (add, remove):
            root.remove(element)
    if add is not None:
        etree.SubElement(root, "owned-volume").text = add
    return etree.tostring(root, encoding="unicode")

"""Edit existing domain XML in place (pure).

vmdeck changes only the elements it was asked to change and re-serialises the
rest untouched, so hand edits and other tools' settings (virt-xml, virsh edit)
survive vmdeck's edits.
"""

from __future__ import annotations

from lxml import etree

__all__ = ["set_resources", "set_boot_order", "BOOT_DEVICES"]

# libvirt's <os><boot dev=...> values vmdeck offers (floppy is left out: no template has one).
BOOT_DEVICES = ("hd", "cdrom", "network")


def _load(xml: str) -> etree._Element:
    parser = etree.XMLParser(remove_blank_text=False)
    return etree.fromstring(xml.encode(), parser)


def _dump(root: etree._Element) -> str:
    return etree.tostring(root, encoding="unicode")


def _child(root: etree._Element, tag: str, after: str | None = None) -> etree._Element:
    element = root.find(tag)
    if element is None:
        element = etree.Element(tag)
        anchor = root.find(after) if after else None
        if anchor is not None:
            anchor.addnext(element)
        else:
            root.append(element)
    return element


def set_resources(xml: str, *, vcpus: int | None = None, memory_mib: int | None = None) -> str:
    """Change vCPU count and/or memory; everything else is kept byte for byte."""
    root = _load(xml)
    if vcpus is not None:
        vcpu = _child(root, "vcpu", after="currentMemory")
        ceiling = int(vcpu.text) if vcpu.text and vcpu.text.strip().isdigit() else 0
        if vcpu.get("current") is not None and vcpus < ceiling:
            # A definition with room to plug vCPUs in keeps its maximum: only the count booted with changes.
            vcpu.set("current", str(vcpus))
        else:
            vcpu.text = str(vcpus)
            if "current" in vcpu.attrib:
                del vcpu.attrib["current"]
        # A stale <vcpus> table or topology would contradict the new count.
        for stale in root.findall("vcpus"):
            root.remove(stale)
        topology = root.find("cpu/topology")
        parent = topology.getparent() if topology is not None else None
        if topology is not None and parent is not None:
            parent.remove(topology)
    if memory_mib is not None:
        for tag in ("memory", "currentMemory"):
            element = _child(root, tag, after="memory" if tag == "currentMemory" else "name")
            element.text = str(memory_mib)
            element.set("unit", "MiB")
    return _dump(root)


def set_boot_order(xml: str, order: list[str] | tuple[str, ...]) -> str:
    """Boot from these devices, in this order (`<os><boot dev=...>`); everything else is kept.

    Per-device `<boot order=...>` elements are removed: libvirt refuses a domain that has both kinds.
    """
    if not order:
        raise ValueError("the boot order needs at least one device")
    unknown = [dev for dev in order if dev not in BOOT_DEVICES]
    if unknown or len(set(order)) != len(order):
        raise ValueError(f"boot devices must be distinct ones of {', '.join(BOOT_DEVICES)}, got {', '.join(order)}")
    root = _load(xml)
    os_element = _child(root, "os")
    for stale in os_element.findall("boot"):
        os_element.remove(stale)
    for device in root.iterfind("devices/*"):
        for device_boot in device.findall("boot"):
            device.remove(device_boot)
    # After the firmware and kernel elements, where libvirt itself writes them.
    anchor = None
    for tag in ("type", "firmware", "loader", "nvram", "kernel", "initrd", "cmdline"):
        found = os_element.find(tag)
        if found is not None:
            anchor = found
    for dev in reversed(order):
        element = etree.Element("boot", dev=dev)
        if anchor is not None:
            anchor.addnext(element)
        else:
            os_element.insert(0, element)
    return _dump(root)

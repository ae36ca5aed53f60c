"""Edit existing domain XML in place (pure).

vmdeck changes only the elements it was asked to change and re-serialises the
rest untouched, so hand edits and other tools' settings (virt-xml, virsh edit)
survive vmdeck's edits.
"""

from __future__ import annotations

from lxml import etree

__all__ = ["set_resources"]


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
        vcpu.text = str(vcpus)
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

"""Read an OVF descriptor (DMTF DSP0243) into plain data (domxml layer: pure, no I/O).

Elements are matched by local name, not by namespace: VMware writes OVF 1.x with
its `vmw:` extensions, VirtualBox adds `vbox:Machine`, and both put the rasd
properties in CIM's namespace; matching by local name reads all of them alike.
Nothing here decides what vmdeck makes of the values (units, buses, templates):
vmdeck.images.ovf does.

The parser resolves no entities, loads no DTD and reaches no network: an OVF is
untrusted input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from vmdeck.errors import InvalidInput

__all__ = ["OvfFile", "OvfDiskRef", "OvfItem", "OvfEnvelope", "read_envelope"]

# rasd:ResourceType values (CIM_ResourceAllocationSettingData).
CPU, MEMORY, IDE, SCSI, NIC, FLOPPY, CDROM, DISK, USB, SATA, SOUND = 3, 4, 5, 6, 10, 14, 15, 17, 23, 20, 35


@dataclass(frozen=True)
class OvfFile:
    id: str
    href: str
    size: int | None
    compression: str = ""  # "gzip" when the file is stored compressed (OVF 1.x ovf:compression)
    chunk_size: str = ""  # set when the file is stored in chunks (href.000000000, href.000000001 ...)


@dataclass(frozen=True)
class OvfDiskRef:
    """A DiskSection entry: capacity (in `units`) and the file holding its content (None: a blank disk)."""

    disk_id: str
    capacity: str
    units: str
    file_ref: str | None
    format: str


@dataclass(frozen=True)
class OvfItem:
    """One rasd Item of the VirtualHardwareSection, its properties by local name."""

    resource_type: int
    props: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.props.get(key, default)


@dataclass(frozen=True)
class OvfEnvelope:
    name: str
    files: tuple[OvfFile, ...]
    disks: tuple[OvfDiskRef, ...]
    items: tuple[OvfItem, ...]
    os_id: int | None
    os_type: str  # VMware's vmw:osType or VirtualBox's OS type, "" when absent
    os_description: str
    firmware: str  # "efi" when the descriptor says so, else ""
    extra_config: dict[str, str]  # vmw:Config / vmw:ExtraConfig key -> value
    system_type: str  # vssd:VirtualSystemType, e.g. "vmx-13" or "virtualbox-2.2"
    virtual_systems: int


def _local(node: etree._Element) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _attr(node: etree._Element, name: str) -> str | None:
    for key, value in node.attrib.items():
        if etree.QName(key).localname == name:
            return str(value)
    return None


def _children(node: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in node if _local(child) == name]


def _first(node: etree._Element, name: str) -> etree._Element | None:
    found = _children(node, name)
    return found[0] if found else None


def _descendants(node: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in node.iter() if _local(child) == name]


def _text(node: etree._Element | None) -> str:
    return (node.text or "").strip() if node is not None else ""


def _parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as err:
        raise InvalidInput(f"the OVF descriptor is not valid XML: {err}") from err
    if _local(root) != "Envelope":
        raise InvalidInput(f"not an OVF descriptor: the root element is <{_local(root)}>, not <Envelope>")
    return root


def _items(system: etree._Element) -> tuple[OvfItem, ...]:
    hardware = _first(system, "VirtualHardwareSection")
    if hardware is None:
        raise InvalidInput("the OVF has no VirtualHardwareSection")
    items = []
    # OVF 1.x says <Item>, OVF 2.0 also <StorageItem> and <EthernetPortItem>.
    for item in (c for c in hardware if _local(c) in ("Item", "StorageItem", "EthernetPortItem")):
        props = {_local(p): _text(p) for p in item if _local(p)}
        kind = props.get("ResourceType", "")
        if not kind.isdigit():
            raise InvalidInput(f"an OVF hardware item has no valid ResourceType ({kind!r})")
        items.append(OvfItem(int(kind), props))
    return tuple(items)


def _config(system: etree._Element) -> tuple[dict[str, str], str]:
    """VMware's vmw:Config / vmw:ExtraConfig pairs, and the firmware they name."""
    pairs: dict[str, str] = {}
    for node in (*_descendants(system, "Config"), *_descendants(system, "ExtraConfig")):
        key, value = _attr(node, "key"), _attr(node, "value")
        if key is not None and value is not None:
            pairs[key] = value
    firmware = pairs.get("firmware", "")
    # VirtualBox keeps its own machine description: <vbox:Machine><Hardware><Firmware type="EFI"/>.
    for node in _descendants(system, "Firmware"):
        if (_attr(node, "type") or "").lower().startswith("efi"):
            firmware = "efi"
    return pairs, firmware.lower()


def read_envelope(data: bytes) -> OvfEnvelope:
    """The first virtual system of an OVF descriptor, with its files, disks and hardware items."""
    root = _parse(data)
    references = _first(root, "References")
    files = []
    for node in _children(references, "File") if references is not None else []:
        size = _attr(node, "size")
        files.append(OvfFile(_attr(node, "id") or "", _attr(node, "href") or "",
                             int(size) if size and size.isdigit() else None,
                             compression=(_attr(node, "compression") or "").lower(),
                             chunk_size=_attr(node, "chunkSize") or ""))
    disks = []
    for section in _children(root, "DiskSection"):
        for node in _children(section, "Disk"):
            disks.append(OvfDiskRef(
                disk_id=_attr(node, "diskId") or "",
                capacity=_attr(node, "capacity") or "",
                units=_attr(node, "capacityAllocationUnits") or "byte",
                file_ref=_attr(node, "fileRef"),
                format=_attr(node, "format") or ""))
    systems = _descendants(root, "VirtualSystem")
    if not systems:
        raise InvalidInput("the OVF describes no VirtualSystem")
    system = systems[0]
    name = _text(_first(system, "Name")) or (_attr(system, "id") or "")
    os_section = _first(system, "OperatingSystemSection")
    os_id = os_type = None
    os_description = ""
    if os_section is not None:
        raw_id = _attr(os_section, "id")
        os_id = int(raw_id) if raw_id and raw_id.isdigit() else None
        os_type = _attr(os_section, "osType")
        os_description = _text(_first(os_section, "Description"))
        vbox = _first(os_section, "OSType")
        if vbox is not None and not os_type:
            os_type = _text(vbox)
    hardware = _first(system, "VirtualHardwareSection")
    system_type = ""
    if hardware is not None:
        vssd = _first(hardware, "System")
        if vssd is not None:
            system_type = _text(_first(vssd, "VirtualSystemType"))
    extra, firmware = _config(system)
    return OvfEnvelope(name=name, files=tuple(files), disks=tuple(disks), items=_items(system),
                       os_id=os_id, os_type=os_type or "", os_description=os_description, firmware=firmware,
                       extra_config=extra, system_type=system_type, virtual_systems=len(systems))

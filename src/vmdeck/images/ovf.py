"""What an OVF package asks for, in vmdeck's terms (images layer: pure but for reading the given files).

vmdeck.domxml.ovf reads the descriptor's XML; this module turns it into an
`OvfPlan`: CPU count, memory in MiB (AllocationUnits such as `byte * 2^20` or
`MegaBytes`), disks with their capacity in bytes and the bus their controller
gives them (5 IDE, 6 SCSI, 20 SATA), NICs with a model QEMU has, the firmware
(VMware's `firmware = efi`, VirtualBox's `<Firmware type="EFI">`) and a fitting
template from the OS section. What the descriptor asks for that vmdeck cannot
give is collected in `not_honoured`, never dropped in silence.

It also checks the package's files: every href must be a plain file name (no
folder, no absolute path, no URL), a disk file must be a regular file and not a
symlink, and the `.mf` manifest's SHA1/SHA256/SHA512 sums must match.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from vmdeck.domxml.ovf import (
    CDROM,
    CPU,
    DISK,
    FLOPPY,
    IDE,
    MEMORY,
    NIC,
    SATA,
    SCSI,
    SOUND,
    USB,
    OvfEnvelope,
    OvfItem,
    read_envelope,
)
from vmdeck.errors import InvalidInput

__all__ = ["OvfPlan", "PlannedDisk", "PlannedNic", "plan_from_ovf", "allocation_units", "check_href",
           "parse_manifest", "verify_manifest", "file_digest", "open_package_file", "LEGACY_TEMPLATE", "MODERN_TEMPLATE"]

LEGACY_TEMPLATE = "legacy-pc"
MODERN_TEMPLATE = "q35-virtio"
WINDOWS_TEMPLATE = "windows"

_UNIT_WORDS = {"byte": 1, "bytes": 1, "b": 1, "kb": 2**10, "kilobyte": 2**10, "kilobytes": 2**10, "kib": 2**10,
               "mb": 2**20, "megabyte": 2**20, "megabytes": 2**20, "mib": 2**20, "gb": 2**30, "gigabyte": 2**30,
               "gigabytes": 2**30, "gib": 2**30, "tb": 2**40, "terabyte": 2**40, "terabytes": 2**40, "tib": 2**40}
_POWER = re.compile(r"\*(\d+)\^(\d+)")


def allocation_units(units: str) -> int:
    """Bytes per unit of a DMTF programmatic unit: `byte`, `byte * 2^20`, `byte * 10^9`, `MegaBytes`, `GB` ...
    (VirtualBox's `MegaBytes` and the short forms are binary, as the tools that write them mean them)."""
    text = units.replace(" ", "").lower()
    if text in _UNIT_WORDS:
        return _UNIT_WORDS[text]
    head, _, rest = text.partition("*")
    if head not in ("byte", "bytes", "") or not rest:
        raise InvalidInput(f"the OVF uses an allocation unit vmdeck does not know: {units!r}")
    factor, tail = 1, "*" + rest
    while tail:
        match = _POWER.match(tail)
        if match is None:
            raise InvalidInput(f"the OVF uses an allocation unit vmdeck does not know: {units!r}")
        factor *= int(match.group(1)) ** int(match.group(2))
        tail = tail[match.end():]
    return factor


def check_href(href: str) -> str:
    """A file reference must name a file beside the descriptor: no folder, no absolute path, no URL."""
    if not href or href in (".", "..") or "/" in href or "\\" in href or ":" in href or "\0" in href:
        raise InvalidInput(f"the OVF refers to file {href!r}: only plain file names beside the descriptor are "
                           "accepted (no folder, absolute path or URL)")
    return href


@dataclass(frozen=True)
class PlannedDisk:
    href: str | None  # the file in the package holding its content; None for a blank disk
    capacity_bytes: int
    bus: str  # vmdeck's bus for it
    controller: str  # what the OVF put it on ("SCSI lsilogic", "SATA", "IDE", "" when none)
    format: str  # the OVF's disk format URI


@dataclass(frozen=True)
class PlannedNic:
    model: str
    ovf_model: str
    connection: str


@dataclass(frozen=True)
class OvfPlan:
    name: str
    vcpus: int
    memory_mib: int
    disks: tuple[PlannedDisk, ...]
    nics: tuple[PlannedNic, ...]
    firmware: str  # "bios" or "uefi"
    secure_boot: bool  # VMware's uefi.secureBoot.enabled
    template: str
    os: str  # what the OS section says, for the plan's reader
    files: dict[str, int | None]  # href -> declared size
    not_honoured: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "vcpus": self.vcpus, "memory_mib": self.memory_mib,
                "disks": [d.__dict__ for d in self.disks], "nics": [n.__dict__ for n in self.nics],
                "firmware": self.firmware, "secure_boot": self.secure_boot, "template": self.template, "os": self.os,
                "not_honoured": list(self.not_honoured)}


# CIM_OperatingSystem OsType ids of systems from before ~2005 that want the i440FX PC (legacy-pc):
# OS/2, MS-DOS, Windows 3.x/95/98/NT/2000/Me/XP/2003, Linux 2.4.
_LEGACY_OS_IDS = {12, 14, 15, 16, 17, 18, 58, 63, 67, 69, 70, 71, 72, 97, 98}
_WINDOWS_OS_IDS = {73, 74, 76, 77, 103, 105, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123}
_OLD_TYPE_WORDS = ("dos", "win31", "windows31", "win95", "windows95", "win98", "windows98", "winme", "windowsme",
                   "winnt", "windowsnt", "win2000", "windows2000", "winxp", "windowsxp", "winnet", "windows2003",
                   "os2", "other24x", "linux24")


def _template_for(env: OvfEnvelope) -> tuple[str, str]:
    """(template, OS as the OVF names it)."""
    described = env.os_description or env.os_type or (f"CIM OS {env.os_id}" if env.os_id is not None else "unknown")
    kind = env.os_type.lower().replace("_", "").replace("-", "")
    if env.os_id in _LEGACY_OS_IDS or any(kind.startswith(word) for word in _OLD_TYPE_WORDS):
        return LEGACY_TEMPLATE, described
    if env.os_id in _WINDOWS_OS_IDS or kind.startswith("win"):
        return WINDOWS_TEMPLATE, described
    return MODERN_TEMPLATE, described


_SCSI_NAMES = {"lsilogic": "LSI Logic", "buslogic": "BusLogic", "lsilogicsas": "LSI Logic SAS",
               "virtualscsi": "VMware Paravirtual", "virtio-scsi": "virtio-scsi"}


def _controller(item: OvfItem) -> tuple[str, str]:
    """(vmdeck bus, a name for the plan) of a controller item."""
    subtype = item.get("ResourceSubType").lower()
    if item.resource_type == IDE:
        return "ide", "IDE"
    if item.resource_type == SCSI:
        return "scsi", f"SCSI {_SCSI_NAMES.get(subtype, subtype or 'controller')}"
    if "nvme" in subtype:
        return "virtio", "NVMe"
    return "sata", "SATA"


_NIC_MODELS = {"e1000": "e1000", "e1000e": "e1000e", "pcnet32": "e1000", "pcnet": "e1000", "vlance": "e1000",
               "flexible": "e1000", "vmxnet": "virtio", "vmxnet2": "virtio", "vmxnet3": "virtio", "virtio": "virtio",
               "virtio-net": "virtio", "rtl8139": "rtl8139"}


def _nic(item: OvfItem, notes: list[str]) -> PlannedNic:
    subtype = item.get("ResourceSubType")
    key = subtype.lower().replace(" ", "")
    model = _NIC_MODELS.get(key)
    if model is None:
        model = "e1000"
        notes.append(f"NIC model {subtype or '(none)'} is unknown to vmdeck: e1000 instead")
    elif key in ("pcnet32", "pcnet", "vlance", "flexible"):
        notes.append(f"NIC model {subtype} (AMD PCnet) becomes e1000: the guest needs an Intel PRO/1000 driver")
    elif key.startswith("vmxnet"):
        notes.append(f"NIC model {subtype} (VMware paravirtual) becomes virtio: the guest needs virtio-net drivers")
    connection = item.get("Connection")
    if connection:
        notes.append(f"NIC on OVF network {connection!r} is attached to vmdeck's user-mode network")
    return PlannedNic(model=model, ovf_model=subtype, connection=connection)


def _host_resource(item: OvfItem) -> tuple[str, str]:
    """('disk' or 'file', id) from `ovf:/disk/vmdisk1`, `/disk/vmdisk1` or `ovf:/file/file1`."""
    resource = item.get("HostResource")
    match = re.fullmatch(r"(?:ovf:)?/(disk|file)/(.+)", resource)
    if match is None:
        raise InvalidInput(f"an OVF disk item has a HostResource vmdeck cannot follow: {resource!r}")
    return match.group(1), match.group(2)


def _capacity(env: OvfEnvelope, disk_id: str) -> tuple[int, str | None, str]:
    for disk in env.disks:
        if disk.disk_id == disk_id:
            if not disk.capacity.isdigit():
                raise InvalidInput(f"OVF disk {disk_id} has a capacity vmdeck cannot read: {disk.capacity!r}")
            return int(disk.capacity) * allocation_units(disk.units), disk.file_ref, disk.format
    raise InvalidInput(f"an OVF disk item refers to disk {disk_id!r}, which the DiskSection does not have")


def _href(env: OvfEnvelope, file_id: str | None) -> str | None:
    if file_id is None:
        return None
    for entry in env.files:
        if entry.id == file_id:
            return check_href(entry.href)
    raise InvalidInput(f"an OVF disk refers to file {file_id!r}, which the References section does not have")


def _quantity(item: OvfItem, what: str) -> int:
    value = item.get("VirtualQuantity")
    if not value.isdigit() or int(value) <= 0:
        raise InvalidInput(f"the OVF's {what} has no valid VirtualQuantity ({value!r})")
    return int(value)


def _memory_mib(item: OvfItem) -> int:
    units = item.get("AllocationUnits") or item.get("VirtualQuantityUnits") or "byte * 2^20"
    total = _quantity(item, "memory") * allocation_units(units)
    return -(-total // 2**20)


def plan_from_ovf(data: bytes) -> OvfPlan:
    """Read an OVF descriptor's first virtual system into an OvfPlan (buses as the OVF says them)."""
    env = read_envelope(data)
    notes: list[str] = []
    if env.virtual_systems > 1:
        notes.append(f"the OVF holds {env.virtual_systems} virtual systems: only the first is imported")
    for entry in env.files:
        check_href(entry.href)
        if entry.compression not in ("", "identity"):
            raise InvalidInput(f"the OVF stores {entry.href} {entry.compression}-compressed: vmdeck imports "
                               "uncompressed files (gunzip it and drop ovf:compression)")
        if entry.chunk_size:
            raise InvalidInput(f"the OVF stores {entry.href} in chunks (ovf:chunkSize): join them first")
    by_id = {item.get("InstanceID"): item for item in env.items}
    vcpus = memory = None
    disks: list[PlannedDisk] = []
    nics: list[PlannedNic] = []
    for item in env.items:
        kind = item.resource_type
        if kind == CPU:
            vcpus = _quantity(item, "CPU count")
            cores = item.get("CoresPerSocket")
            if cores and cores != "1":
                notes.append(f"{cores} cores per socket: vmdeck gives {vcpus} single-core sockets")
            for limit in ("Reservation", "Limit"):
                if item.get(limit) not in ("", "0"):
                    notes.append(f"CPU {limit.lower()} {item.get(limit)} is not applied")
        elif kind == MEMORY:
            memory = _memory_mib(item)
        elif kind == DISK:
            source, ident = _host_resource(item)
            if source == "disk":
                capacity, file_ref, fmt = _capacity(env, ident)
                href = _href(env, file_ref)
            else:
                href, fmt = _href(env, ident), ""
                capacity = 0  # read from the image itself
            parent = by_id.get(item.get("Parent"))
            bus, controller = _controller(parent) if parent is not None else ("virtio", "")
            disks.append(PlannedDisk(href=href, capacity_bytes=capacity, bus=bus, controller=controller, format=fmt))
        elif kind == NIC:
            nics.append(_nic(item, notes))
        elif kind in (FLOPPY, SOUND):
            notes.append(f"{'floppy drive' if kind == FLOPPY else 'sound card'} "
                         f"{item.get('ElementName') or ''} is not created".replace("  ", " "))
        elif kind in (CDROM, CDROM + 1):
            label = item.get("ElementName") or "a CD/DVD drive"
            notes.append(f"{label}: the VM gets its template's empty CD/DVD drives instead")
        elif kind in (IDE, SCSI, SATA, USB):
            continue  # controllers: their disks carry the bus; USB: vmdeck's templates have their own
        else:
            label = item.get("ElementName") or item.get("Description") or f"resource type {kind}"
            notes.append(f"device {label} (rasd ResourceType {kind}) is not created")
    if vcpus is None:
        raise InvalidInput("the OVF gives no CPU count (rasd ResourceType 3)")
    if memory is None:
        raise InvalidInput("the OVF gives no memory size (rasd ResourceType 4)")
    if not disks:
        raise InvalidInput("the OVF has no disk (rasd ResourceType 17)")
    secure = env.extra_config.get("uefi.secureBoot.enabled", "").lower() == "true"
    template, os_name = _template_for(env)
    return OvfPlan(name=env.name, vcpus=vcpus, memory_mib=memory, disks=tuple(disks), nics=tuple(nics),
                   firmware="uefi" if env.firmware == "efi" else "bios", secure_boot=secure, template=template, os=os_name,
                   files={check_href(f.href): f.size for f in env.files}, not_honoured=tuple(notes))


_MANIFEST_LINE = re.compile(r"^(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9A-Fa-f]+)\s*$")


def parse_manifest(text: str) -> dict[str, tuple[str, str]]:
    """`SHA256(disk1.vmdk)= 3f...` lines -> {file: (algorithm, hex digest)}."""
    sums: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line.strip())
        if match is None:
            raise InvalidInput(f"the manifest's line {number} is not `SHA256(file)= digest`: {line.strip()[:80]!r}")
        algorithm, name, digest = match.groups()
        sums[check_href(name)] = (algorithm.lower(), digest.lower())
    return sums


def open_package_file(folder: Path, href: str) -> int:
    """A read-only descriptor on the package's file `href`, refused when it is a symlink or not a regular file."""
    path = Path(folder) / check_href(href)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidInput(f"the package has no file {href!r}") from None
    except OSError as err:
        if Path(path).is_symlink():
            raise InvalidInput(f"the package's file {href!r} is a symbolic link: refused") from None
        raise InvalidInput(f"cannot read the package's file {href!r}: {err.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidInput(f"the package's file {href!r} is not a regular file")
    return fd


def file_digest(folder: Path, href: str, algorithm: str) -> str:
    fd = open_package_file(folder, href)
    digest = hashlib.new(algorithm)
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(4 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_manifest(folder: Path, manifest: dict[str, tuple[str, str]], names: list[str]) -> None:
    """Every file in `names` the manifest lists must match its sum; a file named in the manifest must exist."""
    for name in names:
        if name in manifest:
            algorithm, expected = manifest[name]
            if file_digest(folder, name, algorithm) != expected:
                raise InvalidInput(f"file {name} does not match the manifest's {algorithm.upper()} sum: "
                                   "the package is damaged or was changed")
    for name in manifest:
        path = Path(folder) / name
        if not path.exists() and not path.is_symlink():
            raise InvalidInput(f"the manifest lists {name}, which the package does not have")

"""Read libvirt domain XML back into plain data (pure).

Any domain on the host is read, not only vmdeck's: virt-install's or a
hand-written one gives the same view, with `template` None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from vmdeck.domxml.names import VMDECK_NS
from vmdeck.domxml.tpm import tpm_version_of

__all__ = ["DiskView", "NicView", "PortForwardView", "GraphicsView", "DomainView", "parse_domain", "machine_family",
           "disk_source", "DiskConfig", "disk_configs"]

_NS = {"vmdeck": VMDECK_NS}
_HOSTFWD_RE = re.compile(r"hostfwd=(?P<proto>tcp|udp):(?P<addr>[0-9.]*):(?P<port>\d+)-[0-9.]*:(?P<guest>\d+)")
_UNIT_TO_KIB = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "kb": 1000 / 1024, "m": 1024, "mib": 1024,
                "mb": 1000**2 / 1024, "g": 1024**2, "gib": 1024**2, "gb": 1000**3 / 1024, "t": 1024**3, "tib": 1024**3}


@dataclass(frozen=True)
class DiskView:
    target: str
    bus: str
    device: str  # "disk" | "cdrom" | "floppy" | "lun"
    source: str | None
    format: str | None
    readonly: bool
    owned: bool  # created by vmdeck for this VM: deleted with it


@dataclass(frozen=True)
class NicView:
    mac: str | None
    model: str | None
    kind: str  # "user", "network", "bridge" ...
    network: str | None
    target: str | None  # host-side tap name when running


@dataclass(frozen=True)
class PortForwardView:
    """A user-mode (passt) NIC's <portForward>: host address:port -> guest port."""

    proto: str
    address: str | None
    host_port: int
    guest_port: int


@dataclass(frozen=True)
class GraphicsView:
    type: str
    listen: str | None
    port: int | None
    websocket: int | None
    socket: str | None = None  # <listen type='socket'>: the path, in the live XML of a running VM

    @property
    def on_socket(self) -> bool:
        return self.listen == "socket"


@dataclass(frozen=True)
class DomainView:
    name: str
    uuid: str
    domain_type: str
    arch: str
    machine: str
    vcpus: int
    memory_mib: int
    current_memory_mib: int
    template: str | None
    accel_requested: str | None
    accel_reason: str | None
    boot_kind: str
    disks: tuple[DiskView, ...] = ()
    nics: tuple[NicView, ...] = ()
    graphics: tuple[GraphicsView, ...] = ()
    owned_volumes: tuple[str, ...] = ()
    has_agent_channel: bool = False
    serial_log: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    port_forwards: tuple[PortForwardView, ...] = ()
    boot_order: tuple[str, ...] = ()  # <os><boot dev=...> in order ("hd", "cdrom", "network")
    # <vcpu current="N">MAX</vcpu>: vCPUs can be plugged in up to MAX while the VM runs (vcpus is N).
    max_vcpus: int = 0
    tpm: str | None = None  # the emulated TPM's version ("2.0"), None without one

    @property
    def cdroms(self) -> tuple[DiskView, ...]:
        return tuple(d for d in self.disks if d.device == "cdrom")


def machine_family(machine: str) -> str:
    """libvirt expands 'q35' to 'pc-q35-7.2' in live XML; vmdeck reasons in families."""
    if machine.startswith("pc-q35") or machine == "q35":
        return "q35"
    if machine.startswith("pc-i440fx") or machine == "pc":
        return "pc"
    if machine.startswith("virt"):
        return "virt"
    return machine


def _mib(element: etree._Element | None) -> int:
    if element is None or element.text is None:
        return 0
    unit = element.get("unit", "KiB").lower()
    return int(int(element.text) * _UNIT_TO_KIB.get(unit, 1) / 1024)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def disk_source(disk: etree._Element) -> str | None:
    """The one rule for what a <disk> (or a <backingStore>) reads: its file, block device, pool volume or
    network name, in that order; None for an empty drive."""
    source = disk.find("source")
    if source is None:
        return None
    return source.get("file") or source.get("dev") or source.get("volume") or source.get("name")


@dataclass(frozen=True)
class DiskConfig:
    """How QEMU opens one disk on the host: cache and I/O modes and the backing chain (live XML)."""

    target: str
    device: str
    bus: str
    path: str | None
    format: str | None
    cache: str | None
    io: str | None
    backing_chain: tuple[tuple[str, str | None], ...]  # (path, format), nearest first


def disk_configs(xml: str) -> list[DiskConfig]:
    configs = []
    for disk in etree.fromstring(xml.encode()).iterfind("devices/disk"):
        target, driver = disk.find("target"), disk.find("driver")
        chain = []
        store = disk.find("backingStore")
        while store is not None and store.find("source") is not None:
            fmt = store.find("format")
            chain.append((disk_source(store) or "?", fmt.get("type") if fmt is not None else None))
            store = store.find("backingStore")
        configs.append(DiskConfig(
            target=target.get("dev", "") if target is not None else "",
            device=disk.get("device", "disk"),
            bus=target.get("bus", "") if target is not None else "",
            path=disk_source(disk),
            format=driver.get("type") if driver is not None else None,
            cache=driver.get("cache") if driver is not None else None,
            io=driver.get("io") if driver is not None else None,
            backing_chain=tuple(chain),
        ))
    return configs


def _graphics(g: etree._Element) -> GraphicsView:
    socket = g.find("listen[@type='socket']")
    if socket is not None:  # listen "socket": no address, no port
        return GraphicsView(type=g.get("type", ""), listen="socket", port=None, websocket=None,
                            socket=socket.get("socket"))
    return GraphicsView(type=g.get("type", ""), listen=g.get("listen"), port=_int(g.get("port")),
                        websocket=_int(g.get("websocket")))


def parse_domain(xml: str) -> DomainView:
    root = etree.fromstring(xml.encode())
    meta = root.find("metadata/vmdeck:vm", _NS)
    owned = tuple(e.text for e in meta.findall("vmdeck:owned-volume", _NS) if e.text) if meta is not None else ()
    accel = meta.find("vmdeck:accel", _NS) if meta is not None else None
    extra: dict[str, str] = {}
    if meta is not None:
        for child in meta:
            tag = etree.QName(child).localname
            if tag not in ("template", "accel", "owned-volume") and child.text:
                extra[tag] = child.text
    disks = []
    for disk in root.iterfind("devices/disk"):
        path = disk_source(disk)
        target = disk.find("target")
        driver = disk.find("driver")
        disks.append(
            DiskView(
                target=target.get("dev", "") if target is not None else "",
                bus=target.get("bus", "") if target is not None else "",
                device=disk.get("device", "disk"),
                source=path,
                format=driver.get("type") if driver is not None else None,
                readonly=disk.find("readonly") is not None,
                owned=path is not None and path in owned,
            )
        )
    nics = []
    for nic in root.iterfind("devices/interface"):
        mac, model, source, target = (nic.find(t) for t in ("mac", "model", "source", "target"))
        nics.append(
            NicView(
                mac=mac.get("address") if mac is not None else None,
                model=model.get("type") if model is not None else None,
                kind=nic.get("type", ""),
                network=(source.get("network") or source.get("bridge")) if source is not None else None,
                target=target.get("dev") if target is not None else None,
            )
        )
    forwards = []
    for forward in root.iterfind("devices/interface/portForward"):
        for rng in forward.iterfind("range"):
            start = _int(rng.get("start"))
            if start is None:
                continue
            forwards.append(PortForwardView(proto=forward.get("proto", "tcp"), address=forward.get("address"),
                                            host_port=start, guest_port=_int(rng.get("to")) or start))
    # QEMU's own user-mode NIC given on the command line (render.ssh_forward_args): hostfwd=tcp:ADDR:PORT-:GUEST
    for arg in root.iterfind("{http://libvirt.org/schemas/domain/qemu/1.0}commandline/"
                             "{http://libvirt.org/schemas/domain/qemu/1.0}arg"):
        for match in _HOSTFWD_RE.finditer(arg.get("value", "")):
            forwards.append(PortForwardView(proto=match["proto"], address=match["addr"] or None,
                                            host_port=int(match["port"]), guest_port=int(match["guest"])))
    graphics = tuple(_graphics(g) for g in root.iterfind("devices/graphics"))
    os_type = root.find("os/type")
    vcpu = root.find("vcpu")
    max_vcpus = (_int(vcpu.text) or 1) if vcpu is not None else 1
    serial_log = root.find("devices/serial/log")
    return DomainView(
        name=root.findtext("name", ""),
        uuid=root.findtext("uuid", ""),
        domain_type=root.get("type", ""),
        arch=os_type.get("arch", "") if os_type is not None else "",
        machine=machine_family(os_type.get("machine", "")) if os_type is not None else "",
        vcpus=_int(vcpu.get("current")) or max_vcpus if vcpu is not None else 1,
        memory_mib=_mib(root.find("memory")),
        current_memory_mib=_mib(root.find("currentMemory")) or _mib(root.find("memory")),
        template=meta.findtext("vmdeck:template", namespaces=_NS) if meta is not None else None,
        accel_requested=accel.get("requested") if accel is not None else None,
        accel_reason=accel.get("reason") if accel is not None else None,
        boot_kind="kernel" if root.find("os/kernel") is not None else (
            "uefi" if root.find("os/loader") is not None or root.find("os[@firmware='efi']") is not None else "bios"
        ),
        disks=tuple(disks),
        nics=tuple(nics),
        graphics=graphics,
        boot_order=tuple(b.get("dev", "") for b in root.iterfind("os/boot")),
        owned_volumes=owned,
        has_agent_channel=any(
            t.get("name") == "org.qemu.guest_agent.0" for t in root.iterfind("devices/channel/target")
        ),
        serial_log=serial_log.get("file") if serial_log is not None else None,
        extra=extra,
        port_forwards=tuple(forwards),
        tpm=tpm_version_of(root),
        max_vcpus=max_vcpus,
    )

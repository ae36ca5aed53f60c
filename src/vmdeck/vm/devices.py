"""Disks and NICs of an existing VM, hot and cold: add, attach, remove, resize (core layer).

A running VM gets the change live *and* in its configuration (so it survives
the next boot); a shut-off VM gets it in the configuration only. A bus that
cannot hot-plug (IDE, SATA) on a running VM is changed in the configuration
and the caller is told it takes effect at the next boot. Everything is checked
before anything changes: a refused request leaves the VM's devices as they were.

Volumes vmdeck creates here are recorded as vmdeck:owned-volume in the domain
metadata, so `vmdeck delete` removes them and `disk remove --delete-volume`
may; an image the user attached is never deleted.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmdeck.domxml import devices as dx
from vmdeck.domxml.names import VMDECK_NS, next_target
from vmdeck.domxml.parse import DiskView, DomainView, parse_domain
from vmdeck.domxml.render import disk_element, nic_element, to_xml
from vmdeck.errors import Conflict, HostError, InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import HOTPLUG_REFUSED, Domain
from vmdeck.host.qemu_access import check_qemu_access
from vmdeck.spec.models import BUSES
from vmdeck.storage.pool import GIB, create_volume, delete_volume, pool_free_bytes
from vmdeck.vm.state import ACTIVE, current_state

__all__ = [
    "DeviceChange",
    "HOTPLUG_BUSES",
    "NIC_MODELS",
    "add_disk",
    "attach_disk",
    "remove_disk",
    "resize_disk",
    "add_nic",
    "remove_nic",
    "device_table",
    "apply_attach",
    "users_of_image",
    "drop_owned_record",
]

# virtio disks are PCI(e) functions and SCSI disks hang off a virtio-scsi HBA: both hot-plug.
# IDE and AHCI (SATA) ports cannot: QEMU refuses, so those changes wait for the next boot.
HOTPLUG_BUSES = ("virtio", "scsi", "usb")
NIC_MODELS = ("virtio", "e1000", "e1000e", "rtl8139")
_MAC_RE = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
# Under TCG a guest takes seconds to acknowledge a PCIe hot-unplug (ACPI/pciehp round trip).
UNPLUG_TIMEOUT = 30.0
NEXT_BOOT = "takes effect at the next boot"


@dataclass(frozen=True)
class DeviceChange:
    """What a device operation did, in words a user can act on."""

    vm: str
    device: str  # "disk", "cdrom" or "nic"
    key: str  # target (vdb, sda) or MAC address
    live: bool  # the running VM has it now
    persistent: bool  # the configuration (next boot) has it
    message: str
    source: str | None = None
    size_bytes: int | None = None


# -- reading the VM ---------------------------------------------------------------------------


def is_running(dom: Domain) -> bool:
    return current_state(dom) in ACTIVE


def xml_pair(dom: Domain) -> tuple[str | None, str | None]:
    """(config XML, live XML): None for what does not exist (a transient VM's config, a shut-off VM's live)."""
    config = dom.xml(inactive=True) if dom.is_persistent() else None
    live = dom.xml() if dom.is_active() else None
    return config, live


def _view(dom: Domain) -> DomainView:
    return parse_domain(dom.xml())


def _find_disk(view: DomainView, target: str) -> DiskView | None:
    return next((d for d in view.disks if d.target == target), None)


def users_of_image(host: Host, path: str | Path, *, exclude: str | None = None,
                   running_only: bool = True) -> list[tuple[str, DiskView]]:
    """(VM name, disk) for every running VM whose live XML uses the image at `path`.

    With running_only=False, every VM: its live XML and, when it runs, its saved configuration too
    (a disc inserted for the next boot only still counts as used).
    """
    wanted = str(Path(path).absolute())
    users = []
    for other in host.conn.domains(active=running_only):
        if other.name == exclude:
            continue
        with contextlib.suppress(VmdeckError):  # it may have gone meanwhile
            xmls = [other.xml()]
            if not running_only and other.is_persistent() and other.is_active():
                xmls.append(other.xml(inactive=True))
            seen: set[str] = set()
            for xml in xmls:
                for disk in parse_domain(xml).disks:
                    if disk.source == wanted and disk.target not in seen:
                        seen.add(disk.target)
                        users.append((other.name, disk))
    return users


def device_table(host: Host, name: str) -> list[dx.DeviceRow]:
    """Every disk, CD-ROM and NIC with whether it is live, pending (next boot) or config-only."""
    dom = host.lookup(name)
    config, live = xml_pair(dom)
    # A transient VM has no configuration of its own: its live XML is all there is.
    return dx.device_rows(config if config is not None else live or "<domain/>", live)


# -- metadata: the volumes vmdeck owns ------------------------------------------------------


def _owned_update(dom: Domain, add: str | None = None, remove: str | None = None) -> None:
    """Add or drop one vmdeck:owned-volume record, keeping every other metadata field."""
    for live, present in ((False, dom.is_persistent()), (True, dom.is_active())):
        if not present:
            continue
        edited = dx.with_owned_volume(dom.metadata(VMDECK_NS, live=live), add=add, remove=remove)
        dom.set_metadata(edited, "vmdeck", VMDECK_NS, live=live)


# -- applying a change ----------------------------------------------------------------------


def apply_attach(dom: Domain, device_xml: str, *, hotpluggable: bool, what: str,
                 why_not: str = "this bus cannot hot-plug") -> tuple[bool, str]:
    """Attach `device_xml` live+config (running, hot-pluggable) or config only; returns (live, note)."""
    persistent = dom.is_persistent()
    if not is_running(dom):
        dom.attach(device_xml, live=False, config=True, context=f"{dom.name}: add {what}")
        return False, "added to the configuration (the VM is not running)"
    if not hotpluggable:
        if not persistent:
            raise InvalidInput(f"{what} cannot be hot-plugged and VM {dom.name!r} has no persistent configuration")
        dom.attach(device_xml, live=False, config=True, context=f"{dom.name}: add {what}")
        return False, f"{why_not}: added to the configuration, {NEXT_BOOT}"
    try:
        dom.attach(device_xml, live=True, config=persistent, context=f"{dom.name}: add {what}")
    except VmdeckError as err:
        # QEMU or libvirt refused the hot-plug itself (no free slot, a device that cannot be
        # plugged live): libvirt changed nothing, so the configuration alone can still take it.
        if not persistent or err.cause != HOTPLUG_REFUSED:
            raise
        reason = err.libvirt_text.strip().rstrip(".")
        dom.attach(device_xml, live=False, config=True, context=f"{dom.name}: add {what}")
        return False, f"could not hot-plug ({reason}): added to the configuration, {NEXT_BOOT}"
    return True, "added to the running VM and its configuration"


def _wait_gone(dom: Domain, present: Callable[[str], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not dom.is_active():
            return True
        if not present(dom.xml()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


def _apply_detach(dom: Domain, config_xml: str | None, live_xml: str | None, *, hotpluggable: bool,
                  what: str, present: Callable[[str], bool]) -> tuple[bool, str]:
    """Detach from the config and, where the bus allows, from the running VM; returns (still live, note)."""
    context = f"{dom.name}: remove {what}"
    if live_xml is not None and hotpluggable:
        dom.detach(live_xml, live=True, config=config_xml is not None, context=context)
        if not _wait_gone(dom, present, UNPLUG_TIMEOUT):
            return True, (f"removed from the configuration; the guest has not released it after "
                          f"{UNPLUG_TIMEOUT:g} s (it goes when the guest acknowledges, or at the next boot)")
        return False, "removed from the running VM and its configuration"
    if config_xml is not None:
        dom.detach(config_xml, live=False, config=True, context=context)
    if live_xml is not None:
        return True, f"this bus cannot hot-unplug: removed from the configuration, {NEXT_BOOT}"
    return False, "removed from the configuration"


def drop_owned_record(dom: Domain, path: str) -> None:
    """Forget that vmdeck owns `path` (its file was deleted): vmdeck.vm.volumes' purge."""
    _owned_update(dom, remove=path)


# -- disks ----------------------------------------------------------------------------------


def _check_bus(view: DomainView, bus: str) -> None:
    allowed = BUSES.get(view.machine, ("virtio", "sata", "ide", "scsi"))
    if bus not in allowed:
        raise InvalidInput(f"bus {bus!r} does not exist on machine {view.machine!r}: use {', '.join(allowed)}",
                           field="bus")


def _free_volume_name(host: Host, base: str, fmt: str) -> str:
    names: set[str] = set()
    with contextlib.suppress(VmdeckError):
        names = set(host.conn.pool("vmdeck").volume_names())
    candidate, n = f"{base}.{fmt}", 2
    while candidate in names:
        candidate, n = f"{base}-{n}.{fmt}", n + 1
    return candidate


def _taken_targets(config: str | None, live: str | None) -> list[str]:
    return sorted({t for xml in (config, live) if xml for t in dx.disk_targets(xml)})


def add_disk(host: Host, name: str, size_gib: float, *, bus: str = "virtio", fmt: str = "qcow2") -> DeviceChange:
    """Create a new vmdeck-owned volume of `size_gib` and plug it in as the next free target on `bus`."""
    dom = host.lookup(name)
    config, live_xml = xml_pair(dom)  # the operation's one read of the domain
    _check_bus(parse_domain(live_xml or config or "<domain/>"), bus)
    if fmt not in ("qcow2", "raw"):
        raise InvalidInput(f"disk format must be qcow2 or raw, got {fmt!r}", field="format")
    target = next_target(bus, _taken_targets(config, live_xml))
    # create_volume refuses 0 and sizes beyond the pool's free space before anything exists.
    path = create_volume(host, _free_volume_name(host, f"{name}-{target}", fmt), size_gib, fmt)
    try:
        xml = to_xml(disk_element(path, bus, target, fmt))
        live, note = apply_attach(dom, xml, hotpluggable=bus in HOTPLUG_BUSES, what=f"disk {target}")
    except BaseException:
        delete_volume(host, path)
        raise
    _owned_update(dom, add=str(path))
    return DeviceChange(name, "disk", target, live, dom.is_persistent(),
                        f"disk {target} ({size_gib:g} GiB, {bus}) {note}", str(path), int(size_gib * GIB))


def _image_format(host: Host, path: Path) -> str:
    with contextlib.suppress(VmdeckError):
        fmt = dx.volume_format(host.conn.volume_at(str(path)).xml())
        if fmt:
            return fmt
    with contextlib.suppress(OSError), path.open("rb") as handle:
        if handle.read(4) == b"QFI\xfb":
            return "qcow2"
    return "raw"


def attach_disk(host: Host, name: str, path: str | Path, *, bus: str = "virtio",
                readonly: bool = False) -> DeviceChange:
    """Plug in an existing image the user owns (vmdeck never deletes it)."""
    dom = host.lookup(name)
    config, live = xml_pair(dom)  # the operation's one read of the domain
    _check_bus(parse_domain(live or config or "<domain/>"), bus)
    image = Path(path).expanduser().absolute()
    if not image.exists():
        raise NotFound(f"disk image {image} does not exist")
    if image.is_dir():
        raise InvalidInput(f"disk image {image} is a directory, not an image file")
    check_qemu_access(host, image, write=not readonly)
    for xml in (config, live):
        if xml and any(d.source == str(image) for d in parse_domain(xml).disks):
            raise Conflict(f"{image} is already attached to VM {name!r}")
    users = users_of_image(host, image, exclude=name)
    writers = [vm for vm, disk in users if not disk.readonly]
    if writers or (users and not readonly):
        raise Conflict(f"{image} is in use by running VM {(writers or [users[0][0]])[0]!r}: "
                       "two VMs writing one image corrupt it")
    target = next_target(bus, _taken_targets(config, live))
    fmt = _image_format(host, image)
    element = disk_element(image, bus, target, fmt, readonly=readonly)
    live_now, note = apply_attach(dom, to_xml(element),
                                  hotpluggable=bus in HOTPLUG_BUSES, what=f"disk {target}")
    return DeviceChange(name, "disk", target, live_now, dom.is_persistent(),
                        f"disk {target} ({image.name}, {fmt}, {bus}) {note}", str(image))


def remove_disk(host: Host, name: str, target: str, *, delete_volume_too: bool = False) -> DeviceChange:
    """Unplug disk (or CD drive) `target`; with delete_volume_too, also delete its vmdeck-owned volume."""
    dom = host.lookup(name)
    config, live = xml_pair(dom)
    config_disk = dx.find_disk(config, target) if config else None
    live_disk = dx.find_disk(live, target) if live else None
    if config_disk is None and live_disk is None:
        targets = ", ".join(_taken_targets(config, live)) or "none"
        raise NotFound(f"VM {name!r} has no disk {target!r} (its disks: {targets})")
    view = parse_domain(live or config or "")
    disk = _find_disk(view, target) or _find_disk(parse_domain(config or live or ""), target)
    assert disk is not None
    if delete_volume_too and disk.source and not disk.owned:
        raise InvalidInput(f"{disk.source} was not created by vmdeck for {name!r}: vmdeck never deletes it "
                           "(remove the disk without --delete-volume)")
    still_live, note = _apply_detach(
        dom, config_disk, live_disk, hotpluggable=disk.bus in HOTPLUG_BUSES and disk.device != "cdrom",
        what=f"disk {target}", present=lambda xml: dx.find_disk(xml, target) is not None)
    message = f"{disk.device} {target} {note}"
    if delete_volume_too and disk.source:
        if still_live:
            message += f"; volume {disk.source} kept while the VM still uses it"
        else:
            delete_volume(host, disk.source)
            _owned_update(dom, remove=disk.source)
            message += f"; volume {disk.source} deleted"
    elif disk.owned:
        message += f"; volume {disk.source} kept (vmdeck deletes it with the VM)"
    return DeviceChange(name, disk.device, target, still_live, False, message, disk.source)


def _current_capacity(host: Host, dom: Domain, disk: DiskView) -> int:
    if dom.is_active():
        return dom.block_capacity(disk.target)
    with contextlib.suppress(VmdeckError):
        return host.conn.volume_at(disk.source or "").info()[0]
    return _qemu_img_virtual_size(host, Path(disk.source or ""))


def _qemu_img_virtual_size(host: Host, path: Path) -> int:
    import json

    qemu_img = shutil.which("qemu-img")
    if not host.is_local or qemu_img is None:
        raise HostError(f"cannot read the size of {path}: not a libvirt storage volume")
    result = subprocess.run([qemu_img, "info", "--output=json", "-U", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    if result.returncode != 0:
        raise HostError(f"qemu-img info {path}: {result.stderr.strip().splitlines()[-1:] or result.returncode}")
    return int(json.loads(result.stdout)["virtual-size"])


def resize_disk(host: Host, name: str, target: str, size_gib: float) -> DeviceChange:
    """Grow disk `target` to `size_gib` (live through QEMU when running); shrinking is refused."""
    dom = host.lookup(name)
    view = _view(dom)
    disk = _find_disk(view, target)
    if disk is None:
        raise NotFound(f"VM {name!r} has no disk {target!r} (its disks: {', '.join(d.target for d in view.disks)})")
    if disk.device != "disk" or not disk.source:
        raise InvalidInput(f"{target} is a {disk.device}, not a disk with an image: it cannot be resized")
    if disk.readonly:
        raise InvalidInput(f"disk {target} is read-only: it cannot be resized")
    if size_gib <= 0:
        raise InvalidInput(f"disk size must be more than 0 GiB, got {size_gib:g}", field="size_gib")
    new = int(size_gib * GIB)
    new -= new % 512  # block devices grow in whole sectors
    current = _current_capacity(host, dom, disk)
    if new < current:
        raise InvalidInput(f"disk {target} is {current / GIB:g} GiB: shrinking to {size_gib:g} GiB would lose data "
                           "(vmdeck only grows disks)", field="size_gib")
    if new == current:
        return DeviceChange(name, "disk", target, dom.is_active(), True,
                            f"disk {target} is already {size_gib:g} GiB", disk.source, new)
    if disk.owned:
        free = pool_free_bytes(host)
        if new - current > free:
            raise InvalidInput(f"growing {target} by {(new - current) / GIB:g} GiB does not fit: the pool has "
                               f"{free / GIB:.1f} GiB free", field="size_gib")
    if dom.is_active():
        dom.block_resize(target, new)
        note = "resized live: the guest sees the new size now"
    else:
        try:
            volume = host.conn.volume_at(disk.source)
        except VmdeckError:
            _qemu_img_resize(host, Path(disk.source), new)
        else:
            volume.resize(new)
        note = "resized: the guest sees the new size at its next boot"
    return DeviceChange(name, "disk", target, dom.is_active(), True,
                        f"disk {target} {current / GIB:g} -> {size_gib:g} GiB, {note}", disk.source, new)


def _qemu_img_resize(host: Host, path: Path, size: int) -> None:
    qemu_img = shutil.which("qemu-img")
    if not host.is_local or qemu_img is None:
        raise HostError(f"cannot resize {path}: it is not a libvirt storage volume")
    result = subprocess.run([qemu_img, "resize", str(path), str(size)], capture_output=True, text=True,
                            timeout=120, check=False)
    if result.returncode != 0:
        raise HostError(f"qemu-img resize {path}: {(result.stderr.strip().splitlines() or ['failed'])[-1]}")


# -- NICs -----------------------------------------------------------------------------------


def add_nic(host: Host, name: str, *, model: str = "virtio", network: str = "user",
            mac: str | None = None) -> DeviceChange:
    """Plug in a NIC on QEMU's user network or a libvirt network; returns its MAC."""
    dom = host.lookup(name)
    if model not in NIC_MODELS:
        raise InvalidInput(f"unknown NIC model {model!r}: use {', '.join(NIC_MODELS)}", field="model")
    if network != "user" and not host.conn.has_network(network):
        raise NotFound(f"no libvirt network named {network!r} (or use --network user)")
    config, live = xml_pair(dom)
    taken = sorted({m for xml in (config, live) if xml for m in dx.macs(xml)})
    if mac is not None:
        if not _MAC_RE.fullmatch(mac):  # fullmatch: "$" would accept a trailing newline
            raise InvalidInput(f"invalid MAC address {mac!r}: use six hex pairs like 52:54:00:12:34:56", field="mac")
        mac = mac.lower()
        if int(mac[:2], 16) & 1:
            raise InvalidInput(f"{mac} is a multicast address: a NIC needs a unicast MAC", field="mac")
        if mac in taken:
            raise Conflict(f"VM {name!r} already has a NIC with MAC {mac}")
    mac = mac or dx.random_mac(taken)
    from vmdeck.vm.networks import clean_traffic_nics, vmdeck_networks

    xml = clean_traffic_nics(to_xml(nic_element(model, network, mac)), vmdeck_networks(host, {network}))
    live_now, note = apply_attach(dom, xml, hotpluggable=True, what=f"NIC {mac}")
    return DeviceChange(name, "nic", mac, live_now, dom.is_persistent(),
                        f"NIC {mac} ({model}, {network}) {note}", network)


def remove_nic(host: Host, name: str, mac: str) -> DeviceChange:
    dom = host.lookup(name)
    config, live = xml_pair(dom)
    config_nic = dx.find_nic(config, mac) if config else None
    live_nic = dx.find_nic(live, mac) if live else None
    if config_nic is None and live_nic is None:
        known = sorted({m for xml in (config, live) if xml for m in dx.macs(xml)})
        raise NotFound(f"VM {name!r} has no NIC with MAC {mac} (its NICs: {', '.join(known) or 'none'})")
    still_live, note = _apply_detach(dom, config_nic, live_nic, hotpluggable=True, what=f"NIC {mac}",
                                     present=lambda xml: dx.find_nic(xml, mac) is not None)
    return DeviceChange(name, "nic", mac.lower(), still_live, False, f"NIC {mac.lower()} {note}")

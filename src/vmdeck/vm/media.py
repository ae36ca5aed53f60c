"""CD/DVD drives and their media: insert, eject, add a drive (core layer).

A media change on a running VM goes to QEMU (the guest sees the tray close)
and to the configuration in the same libvirt call, so the disc is still in
after the next boot; on a shut-off VM it changes the configuration only.
ISOs are never owned by vmdeck: ejecting or deleting a VM leaves them alone.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

from vmdeck.domxml import devices as dx
from vmdeck.domxml.names import next_target
from vmdeck.domxml.parse import DiskView, parse_domain
from vmdeck.domxml.render import cdrom_element, to_xml
from vmdeck.errors import Conflict, InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import TRAY_LOCKED, Domain
from vmdeck.host.qemu_access import check_qemu_access
from vmdeck.spec.models import BUSES
from vmdeck.vm.create import check_iso
from vmdeck.vm.devices import DeviceChange, apply_attach, users_of_image, xml_pair

__all__ = ["insert", "eject", "add_drive", "choose_cdrom_bus"]

# A new drive always goes to the configuration only (it appears at the next boot), even on
# virtio-scsi, which could hot-plug: libvirt 9.0 refuses to hot-plug an *empty* SCSI CD ("argument
# key 'filename' must not have null value"), and a SCSI CD hot-plugged with a disc in it then
# cannot change media ("Tray of device ... is not open") until the VM restarts. Both verified here.
_HOTPLUG: tuple[str, ...] = ()


def _drives(xml: str | None) -> list[DiskView]:
    return list(parse_domain(xml).cdroms) if xml else []


def _pick(name: str, config: str | None, live: str | None, drive: str | None) -> str:
    """The drive's target: the one asked for, else the VM's first CD/DVD drive."""
    drives = _drives(live) or _drives(config)
    known = {d.target for d in (*_drives(live), *_drives(config))}
    if drive is None:
        if not drives:
            raise NotFound(f"VM {name!r} has no CD/DVD drive (vmdeck cdrom add {name} adds one)")
        return drives[0].target
    if drive not in known:
        others = {d.target for xml in (config, live) if xml for d in parse_domain(xml).disks}
        if drive in others:
            raise InvalidInput(f"{drive} on VM {name!r} is a disk, not a CD/DVD drive (drives: "
                               f"{', '.join(sorted(known)) or 'none'})")
        raise NotFound(f"VM {name!r} has no CD/DVD drive {drive!r} (drives: {', '.join(sorted(known)) or 'none'})")
    return drive


def _update(dom: Domain, config: str | None, live: str | None, target: str, iso: str | None,
            force: bool) -> tuple[bool, bool]:
    """Change the media of `target` live and/or in the config; returns (live, persistent)."""
    live_disk = dx.find_disk(live, target) if live else None
    config_disk = dx.find_disk(config, target) if config else None
    action = f"{dom.name}: {'insert ' + iso if iso else 'eject'} ({target})"
    try:
        if live_disk is not None:
            dom.update_device(dx.with_media(live_disk, iso), live=True, config=config_disk is not None, force=force,
                              context=action)
        elif config_disk is not None:
            dom.update_device(dx.with_media(config_disk, iso), live=False, config=True, context=action)
    except VmdeckError as err:
        if err.cause == TRAY_LOCKED:
            raise Conflict(f"{action}: the guest has locked the tray (unmount the disc in the guest, "
                           "or eject with --force)") from err
        raise
    return live_disk is not None, config_disk is not None


def _describe(name: str, target: str, live: bool, persistent: bool, running: bool, what: str) -> str:
    if live and persistent:
        where = "now and after the next boot"
    elif live:
        where = "in the running VM only (this drive is not in its configuration)"
    elif running:
        where = "in the configuration: the drive is pending, it appears at the next boot"
    else:
        where = "in the configuration (the VM is not running)"
    return f"{name}: {what} drive {target}, {where}"


# One media change per VM at a time in this process (the API server): a change reads the drive's XML and
# writes it back, and a second change made from the same stale XML is refused by libvirt ("cannot modify
# field"). Waiting for the first makes the second an ordinary, later change.
_MEDIA_LOCKS: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


def insert(host: Host, name: str, iso: str | Path, *, drive: str | None = None, force: bool = False) -> DeviceChange:
    """Put `iso` in the VM's drive (replacing any disc in it)."""
    with _MEDIA_LOCKS[(host.uri, name)]:
        return _insert(host, name, iso, drive=drive, force=force)


def _insert(host: Host, name: str, iso: str | Path, *, drive: str | None, force: bool) -> DeviceChange:
    dom = host.lookup(name)
    path = check_iso(Path(iso))
    check_qemu_access(host, path)
    for other, disk in users_of_image(host, path, exclude=name):
        if not disk.readonly:
            raise Conflict(f"{path} is attached writable to running VM {other!r} (as {disk.target}): "
                           "it cannot be used as media while that VM may write it")
    config, live = xml_pair(dom)
    target = _pick(name, config, live, drive)
    is_live, persistent = _update(dom, config, live, target, str(path), force)
    message = _describe(name, target, is_live, persistent, live is not None, f"{path.name} inserted in")
    return DeviceChange(name, "cdrom", target, is_live, persistent, message, str(path))


def eject(host: Host, name: str, *, drive: str | None = None, force: bool = False) -> DeviceChange:
    """Empty the VM's drive; the ISO file itself is left untouched."""
    with _MEDIA_LOCKS[(host.uri, name)]:
        return _eject(host, name, drive=drive, force=force)


def _eject(host: Host, name: str, *, drive: str | None, force: bool) -> DeviceChange:
    dom = host.lookup(name)
    config, live = xml_pair(dom)
    target = _pick(name, config, live, drive)
    current = next((d for d in _drives(live) or _drives(config) if d.target == target), None)
    is_live, persistent = _update(dom, config, live, target, None, force)
    was = f" ({Path(current.source).name})" if current is not None and current.source else " (it was empty)"
    return DeviceChange(name, "cdrom", target, is_live, persistent,
                        _describe(name, target, is_live, persistent, live is not None, f"media ejected{was} from"))


def choose_cdrom_bus(machine: str, config_xml: str) -> str:
    """The bus a new drive goes on: virtio-scsi where the VM has that HBA, else SATA on q35, IDE on pc."""
    if dx.has_scsi_controller(config_xml) or machine == "virt":
        return "scsi"
    return {"q35": "sata", "pc": "ide"}.get(machine, "scsi")


def add_drive(host: Host, name: str, *, bus: str | None = None, iso: str | Path | None = None) -> DeviceChange:
    """A new (empty, or with `iso`) CD/DVD drive on a bus the machine type has."""
    dom = host.lookup(name)
    config, live = xml_pair(dom)
    base = config or live or ""
    view = parse_domain(base)
    bus = bus or choose_cdrom_bus(view.machine, base)
    allowed = BUSES.get(view.machine, ("sata", "ide", "scsi"))
    if bus == "virtio" or bus not in allowed:
        usable = ", ".join(b for b in allowed if b != "virtio")
        raise InvalidInput(f"a CD/DVD drive cannot go on bus {bus!r} of machine {view.machine!r}: use {usable}",
                           field="bus")
    path = check_iso(Path(iso)) if iso is not None else None
    if path is not None:
        check_qemu_access(host, path)
    if bus == "ide":
        ide = [d for xml in (config, live) if xml for d in parse_domain(xml).disks if d.bus == "ide"]
        if len({d.target for d in ide}) >= 4:
            raise Conflict(f"VM {name!r} has all 4 IDE positions taken: no room for another drive")
    taken = sorted({t for xml in (config, live) if xml for t in dx.disk_targets(xml)})
    target = next_target(bus, taken)
    xml = to_xml(cdrom_element(bus, target, path))
    is_live, note = apply_attach(dom, xml, hotpluggable=bus in _HOTPLUG, what=f"CD/DVD drive {target}",
                                 why_not="CD/DVD drives are not hot-plugged")
    return DeviceChange(name, "cdrom", target, is_live, dom.is_persistent(),
                        f"CD/DVD drive {target} ({bus}) {note}", str(path) if path else None)

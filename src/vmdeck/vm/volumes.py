"""A VM's storage as its owner sees it: each disk's size and room on the host, and the volumes it kept (core layer).

A disk removed with "keep the volume" leaves its file in the pool and its vmdeck:owned-volume record in the
VM's metadata (vmdeck.vm.devices.remove_disk): the record is what makes it the VM's, counted against the
project's disk quota and deleted with the VM. So a *kept volume* needs no record of its own: it is an owned
volume that no disk of the VM reads (in its saved or running definition), that no snapshot record names and
that no image on the host is an overlay of (vmdeck.storage.usage). Reattaching plugs it in again as the next
free disk; purging deletes the file and drops the record. Both take the volume by its file name, the only part
of its path a tenant ever sees (vmdeck.api.hostpaths), and act only on the VM's own kept volumes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from vmdeck.domxml.parse import DiskView, parse_domain
from vmdeck.domxml.snapshots import read_tree
from vmdeck.errors import Conflict, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Domain
from vmdeck.storage.images import read_backing
from vmdeck.storage.pool import delete_volume
from vmdeck.vm.devices import DeviceChange, attach_disk, drop_owned_record

__all__ = ["DiskFacts", "KeptVolume", "disk_facts", "kept_volumes", "reattach_volume", "purge_volume"]


@dataclass(frozen=True)
class DiskFacts:
    """One disk (not a CD/DVD drive) of a VM: what the guest sees and what the host spends on it."""

    target: str
    bus: str
    source: str | None
    format: str | None
    readonly: bool
    owned: bool  # vmdeck made it for this VM (counted in the disk quota, deleted with the VM)
    virtual_bytes: int | None  # the size the guest sees
    allocated_bytes: int | None  # what the file takes on the host now
    backing: str | None  # an overlay's backing file (a linked clone, a snapshot's chain); None: a whole image
    live: bool  # in the running VM
    persistent: bool  # in the definition the next boot uses


@dataclass(frozen=True)
class KeptVolume:
    """A volume vmdeck made for the VM that no disk uses any more (kept when its disk was removed)."""

    name: str  # the file name: how callers name it
    path: str
    format: str
    virtual_bytes: int | None
    allocated_bytes: int | None


def _sizes(host: Host, path: str) -> tuple[int | None, int | None]:
    """(capacity, allocation) of a pool volume; (None, None) for a file libvirt does not know."""
    with contextlib.suppress(VmdeckError):
        return host.conn.volume_at(path).info()
    return None, None


def _definitions(dom: Domain) -> tuple[str | None, str | None]:
    config = dom.xml(inactive=True) if dom.is_persistent() else None
    live = dom.xml() if dom.is_active() else None
    return config, live


def disk_facts(host: Host, name: str) -> list[DiskFacts]:
    """Every disk of VM `name`, in its running definition first, then those waiting for the next boot."""
    dom = host.lookup(name)
    config, live = _definitions(dom)
    live_disks = {d.target: d for d in parse_domain(live).disks} if live else {}
    config_disks = {d.target: d for d in parse_domain(config).disks} if config else {}
    facts = []
    for target in [*live_disks, *(t for t in config_disks if t not in live_disks)]:
        disk: DiskView = live_disks.get(target) or config_disks[target]
        if disk.device not in ("disk", "lun"):
            continue
        capacity, allocation = _sizes(host, disk.source) if disk.source else (None, None)
        if target in live_disks and dom.is_active():
            # The running QEMU's own figure: a live resize shows at once, before the pool is refreshed.
            with contextlib.suppress(VmdeckError):
                capacity = dom.block_capacity(target)
        backing = read_backing(disk.source) if disk.source and host.is_local else None
        facts.append(DiskFacts(target, disk.bus, disk.source, disk.format, disk.readonly, disk.owned, capacity,
                               allocation, backing, target in live_disks, target in config_disks))
    return facts


def _in_use(host: Host, name: str, owned: set[str]) -> set[str]:
    """Which of `owned` something reads: a disk of any VM (directly or as a backing file), a snapshot."""
    from vmdeck.storage.usage import image_usage

    usage = image_usage(host)
    used = {path for path in owned if usage.in_use(path)}
    dom = host.lookup(name)
    for xml in _definitions(dom):
        if xml is None:
            continue
        # CD/DVD drives too (a cloud-init seed is an owned volume in a drive), and the snapshot records' files.
        used |= {d.source for d in parse_domain(xml).disks if d.source}
        used |= set(read_tree(xml).created_files)
    return used


def kept_volumes(host: Host, name: str) -> list[KeptVolume]:
    """The volumes VM `name` owns that no disk uses: kept when their disk was removed."""
    dom = host.lookup(name)
    config, live = _definitions(dom)
    owned = set(parse_domain(config or live or "<domain/>").owned_volumes)
    if not owned:
        return []
    unused = sorted(owned - _in_use(host, name, owned))
    kept = []
    for path in unused:
        if not Path(path).exists() and host.is_local:
            continue  # deleted by hand: nothing left to reattach or delete
        capacity, allocation = _sizes(host, path)
        fmt = "qcow2" if path.endswith(".qcow2") else "raw"
        kept.append(KeptVolume(Path(path).name, path, fmt, capacity, allocation))
    return kept


def _find_kept(host: Host, name: str, volume: str) -> KeptVolume:
    kept = kept_volumes(host, name)
    for item in kept:
        if volume in (item.name, item.path):
            return item
    listed = ", ".join(k.name for k in kept) or "none"
    raise NotFound(f"VM {name!r} has no kept volume {volume!r} (its kept volumes: {listed})")


def reattach_volume(host: Host, name: str, volume: str, *, bus: str = "virtio") -> DeviceChange:
    """Plug kept volume `volume` (its file name) into VM `name` again, as the next free disk on `bus`."""
    return attach_disk(host, name, _find_kept(host, name, volume).path, bus=bus)


def purge_volume(host: Host, name: str, volume: str) -> KeptVolume:
    """Delete kept volume `volume` from the pool and from VM `name`'s record: its data is gone for good."""
    item = _find_kept(host, name, volume)
    dom = host.lookup(name)
    if any(item.path == d.source for xml in _definitions(dom) if xml for d in parse_domain(xml).disks):
        raise Conflict(f"volume {item.name} is plugged into {name!r} again: remove the disk first")
    delete_volume(host, item.path)
    drop_owned_record(dom, item.path)
    return item

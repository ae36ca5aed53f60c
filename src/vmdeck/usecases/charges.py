"""What an operation will take from a project's quotas, worked out before it takes anything (use-case layer).

Usage is counted on configured sizes (vmdeck.vm.project): every volume vmdeck created for a VM counts
with its virtual size, whatever it holds yet. So each operation is charged what its new volumes may grow
to, which is what the count will say once they exist:

- a create: its new volumes, and for a disk that is a linked clone of a library image the overlay's
  size (the image's virtual size, or the disk's size when larger);
- a snapshot: one overlay per disk it covers, each as large as that disk, plus the memory state
  (up to the VM's memory) with --memory, plus the copy of the UEFI variable store;
- a linked clone: the source's snapshot (as above) plus the clone's overlays (as large again);
  a full clone: a copy of each disk;
- a revert: one fresh overlay per disk of the snapshot, each as large as its frozen image (the overlays
  it replaces are deleted after, when nothing else needs them: the count then drops again).
"""

from __future__ import annotations

from pathlib import Path

from vmdeck.domxml.parse import DiskView, DomainView, parse_domain
from vmdeck.domxml.snapshots import nvram_path, read_tree
from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.spec.models import VmSpec
from vmdeck.store.quota import Demand, demand_for

__all__ = ["GIB", "create_demand", "snapshot_demand", "revert_demand", "clone_demand"]

GIB = 2**30


def create_demand(spec: VmSpec) -> Demand:
    """A create from `spec`: instances, vCPUs, memory, and every volume it makes, image overlays included."""
    base = demand_for(spec)
    images = 0.0
    if any(d.image for d in spec.disks):
        from vmdeck.images.library import find_image

        for disk in spec.disks:
            record = find_image(disk.image) if disk.image and disk.source is None else None
            if record is not None:  # an unknown image is refused by the create itself, naming the known ones
                # demand_for counted size_gib already; the overlay is the larger of the two.
                images += max(0.0, record.virtual_size / GIB - (disk.size_gib or 0.0))
    return Demand(instances=base.instances, vcpus=base.vcpus, memory_mib=base.memory_mib,
                  disk_gib=round(base.disk_gib + images, 6))


def _capacity_gib(host: Host, path: str) -> float:
    """A disk image's virtual size: from libvirt for a pool volume, else from its header."""
    try:
        return float(host.conn.volume_at(path).info()[0]) / GIB
    except VmdeckError:
        pass
    try:
        from vmdeck.storage.images import image_info

        return image_info(path).virtual_size / GIB
    except (VmdeckError, OSError):
        return 0.0  # unreadable: the snapshot itself refuses it with the reason


def _covered(view: DomainView) -> list[DiskView]:
    """The disks a snapshot puts on new overlays (vmdeck.vm.snapshot_ops._snapshot_disks's choice)."""
    return [d for d in view.disks if d.device == "disk" and not d.readonly and d.source]


def _file_gib(path: str | None) -> float:
    try:
        return Path(path).stat().st_size / GIB if path else 0.0
    except OSError:
        return 0.0


def snapshot_demand(host: Host, name: str, *, memory: bool = False) -> Demand:
    dom = host.lookup(name)
    view = parse_domain(dom.xml())
    disk = sum(_capacity_gib(host, d.source or "") for d in _covered(view))
    if memory:
        disk += view.memory_mib / 1024  # the saved state holds at most the guest's RAM (and a little device state)
    disk += _file_gib(nvram_path(dom.xml(inactive=True)))
    return Demand(disk_gib=round(disk, 6))


def revert_demand(host: Host, name: str, snap: str) -> Demand:
    """A revert to `snap`: a fresh overlay on each of its frozen images (NotFound for no such snapshot)."""
    record = read_tree(host.lookup(name).xml(inactive=True)).get(snap)
    return Demand(disk_gib=round(sum(_capacity_gib(host, image) for _target, image in record.disks), 6))


def clone_demand(host: Host, source: str, *, linked: bool) -> Demand:
    dom = host.lookup(source)
    config = dom.xml(inactive=True)
    view = parse_domain(config)
    owned = set(view.owned_volumes) | set(read_tree(config).created_files)
    if linked:
        disk = 2 * snapshot_demand(host, source).disk_gib  # the source's overlays, then the clone's
    else:
        disk = sum(_capacity_gib(host, d.source or "") for d in _covered(view) if d.source in owned)
        disk += _file_gib(nvram_path(config))
    return Demand(instances=1, vcpus=view.vcpus, memory_mib=view.memory_mib, disk_gib=round(disk, 6))

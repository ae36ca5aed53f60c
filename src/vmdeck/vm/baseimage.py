"""VM disks from library images: qcow2 overlays (linked clones), seed volumes, and who uses a base (vm layer).

The overlay and the seed go through libvirt's storage API into vmdeck's pool, like
every volume vmdeck owns; the VM's metadata lists them, so `vmdeck delete` removes
them and never the base image.
"""

from __future__ import annotations

import socket
from pathlib import Path

from vmdeck.domxml.parse import parse_domain
from vmdeck.domxml.snapshots import overlay_volume_xml
from vmdeck.domxml.storage import raw_volume_xml
from vmdeck.errors import Conflict, InvalidInput, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import StoragePool
from vmdeck.images.library import ImageRecord
from vmdeck.storage.pool import GIB, POOL_NAME, ensure_pool, pool_free_bytes

__all__ = ["overlay_capacity", "create_overlay", "upload_volume", "vms_using_image", "free_loopback_port"]


def overlay_capacity(record: ImageRecord, size_gib: float | None) -> int:
    """Bytes for the VM's disk: the image's virtual size, or --disk when larger; smaller is refused."""
    if size_gib is None:
        return record.virtual_size
    wanted = int(size_gib * GIB)
    if wanted < record.virtual_size:
        raise InvalidInput(f"--disk {size_gib:g} GiB is smaller than image {record.name!r} "
                           f"({record.virtual_size / GIB:.2f} GiB): give at least "
                           f"{-(-record.virtual_size // GIB)} GiB", field="disk_gib")
    return wanted


def _check_free_name(pool: StoragePool, name: str) -> None:
    try:
        pool.volume(name)
    except VmdeckError:
        return
    raise Conflict(f"volume {name!r} already exists in pool '{POOL_NAME}'")


def create_overlay(host: Host, name: str, record: ImageRecord, capacity: int) -> Path:
    """A qcow2 volume whose backing file is the library image: only the VM's own writes land in it."""
    pool = ensure_pool(host)
    _check_free_name(pool, name)
    volume = pool.create_volume(overlay_volume_xml(name, capacity, record.path, record.format))
    return Path(volume.path())


def upload_volume(host: Host, name: str, data: bytes) -> Path:
    """A raw volume holding `data` (a seed ISO), sent through a libvirt stream: works on remote hosts too."""
    pool = ensure_pool(host)
    if len(data) > pool_free_bytes(host):
        raise InvalidInput(f"volume {name} does not fit in pool '{POOL_NAME}'")
    _check_free_name(pool, name)
    volume = pool.create_volume(raw_volume_xml(name, len(data)))
    try:
        stream = host.conn.new_stream(context=f"upload {name}")
        volume.upload(stream)
        stream.send_all(data)
        stream.finish()
    except BaseException:
        volume.delete()
        raise
    return Path(volume.path())


def vms_using_image(host: Host, image_path: Path) -> list[str]:
    """Names of the VMs (vmdeck's or anyone's) with a disk whose backing chain reaches image_path."""
    from vmdeck.storage.usage import image_usage

    return sorted(image_usage(host).vms_using(str(Path(image_path).absolute())))


def free_loopback_port(host: Host) -> int:
    """A TCP port free on 127.0.0.1 now and not promised to another VM's port forward (running or not)."""
    xmls = [d.xml(inactive=True) for d in host.conn.domains()]
    promised = {f.host_port for xml in xmls for f in parse_domain(xml).port_forwards}
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in promised:
            return port
    raise Conflict("no free TCP port on 127.0.0.1 for the SSH forward")

"""VM disks from library images: qcow2 overlays (linked clones), seed volumes, and who uses a base (vm layer).

The overlay and the seed go through libvirt's storage API into vmdeck's pool, like
every volume vmdeck owns; the VM's metadata lists them, so `vmdeck delete` removes
them and never the base image.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from vmdeck.domxml.parse import parse_domain
from vmdeck.domxml.storage import overlay_volume_xml, raw_volume_xml
from vmdeck.errors import Conflict, InvalidInput, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import StoragePool
from vmdeck.images.library import ImageRecord
from vmdeck.storage.pool import GIB, POOL_NAME, ensure_pool, pool_free_bytes

__all__ = ["overlay_capacity", "create_overlay", "upload_volume", "vms_using_image", "backing_chain",
           "free_loopback_port"]


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


def backing_chain(path: str) -> list[str]:
    """Every backing file under a local image, nearest first (qemu-img reads the headers)."""
    try:
        result = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json", path],
                                capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:
        return []
    chain = json.loads(result.stdout)
    return [str(Path(entry["backing-filename-full"] if "backing-filename-full" in entry
                     else entry["backing-filename"]).resolve())
            for entry in chain if entry.get("backing-filename")]


def vms_using_image(host: Host, image_path: Path) -> list[str]:
    """Names of the VMs (vmdeck's or anyone's) with a disk whose backing chain reaches image_path."""
    wanted = str(Path(image_path).resolve())
    users = []
    views = [parse_domain(d.xml(inactive=True)) for d in host.conn.domains()]
    for view in views:
        for disk in view.disks:
            if disk.source and disk.device == "disk" and (
                    str(Path(disk.source).resolve()) == wanted or wanted in backing_chain(disk.source)):
                users.append(view.name)
                break
    return users


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

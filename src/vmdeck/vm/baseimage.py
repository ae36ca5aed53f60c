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

import libvirt
from lxml import etree

from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import Conflict, InvalidInput
from vmdeck.host.connection import Host, libvirt_errors
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


def _check_free_name(pool: libvirt.virStoragePool, name: str) -> None:
    try:
        pool.storageVolLookupByName(name)
    except libvirt.libvirtError:
        return
    raise Conflict(f"volume {name!r} already exists in pool '{POOL_NAME}'")


def create_overlay(host: Host, name: str, record: ImageRecord, capacity: int) -> Path:
    """A qcow2 volume whose backing file is the library image: only the VM's own writes land in it."""
    pool = ensure_pool(host)
    root = etree.Element("volume")
    etree.SubElement(root, "name").text = name
    etree.SubElement(root, "capacity", unit="bytes").text = str(capacity)
    etree.SubElement(root, "allocation", unit="bytes").text = "0"
    target = etree.SubElement(root, "target")
    etree.SubElement(target, "format", type="qcow2")
    backing = etree.SubElement(root, "backingStore")
    etree.SubElement(backing, "path").text = record.path
    etree.SubElement(backing, "format", type=record.format)
    with libvirt_errors(f"volume {name}"):
        _check_free_name(pool, name)
        volume = pool.createXML(etree.tostring(root, encoding="unicode"), 0)
        return Path(volume.path())


def upload_volume(host: Host, name: str, data: bytes) -> Path:
    """A raw volume holding `data` (a seed ISO), sent through a libvirt stream: works on remote hosts too."""
    pool = ensure_pool(host)
    if len(data) > pool_free_bytes(host):
        raise InvalidInput(f"volume {name} does not fit in pool '{POOL_NAME}'")
    root = etree.Element("volume")
    etree.SubElement(root, "name").text = name
    etree.SubElement(root, "capacity", unit="bytes").text = str(len(data))
    target = etree.SubElement(root, "target")
    etree.SubElement(target, "format", type="raw")
    with libvirt_errors(f"volume {name}"):
        _check_free_name(pool, name)
        volume = pool.createXML(etree.tostring(root, encoding="unicode"), 0)
        try:
            stream = host.conn.newStream(0)
            volume.upload(stream, 0, len(data), 0)
            stream.send(data) if len(data) < 2**20 else _send_all(stream, data)
            stream.finish()
        except BaseException:
            volume.delete(0)
            raise
        return Path(volume.path())


def _send_all(stream: libvirt.virStream, data: bytes) -> None:
    view = memoryview(data)
    while view:
        sent = stream.send(bytes(view[: 2**20]))
        view = view[sent:]


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
    with libvirt_errors("list VMs"):
        domains = host.conn.listAllDomains(0)
        views = [parse_domain(d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) for d in domains]
    for view in views:
        for disk in view.disks:
            if disk.source and disk.device == "disk" and (
                    str(Path(disk.source).resolve()) == wanted or wanted in backing_chain(disk.source)):
                users.append(view.name)
                break
    return users


def free_loopback_port(host: Host) -> int:
    """A TCP port free on 127.0.0.1 now and not promised to another VM's port forward (running or not)."""
    with libvirt_errors("list VMs"):
        xmls = [d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for d in host.conn.listAllDomains(0)]
    promised = {f.host_port for xml in xmls for f in parse_domain(xml).port_forwards}
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in promised:
            return port
    raise Conflict("no free TCP port on 127.0.0.1 for the SSH forward")

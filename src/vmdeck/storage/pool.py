"""vmdeck's storage pool: a libvirt `dir` pool holding the qcow2 volumes it creates.

Volumes go through libvirt's storage API (not qemu-img) so that the same code
works against a remote host, and allocation stays thin (qcow2, allocation 0).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import libvirt
from lxml import etree

from vmdeck.errors import Conflict, InvalidInput, NotFound
from vmdeck.host.connection import Host, libvirt_errors
from vmdeck.paths import pool_dir

__all__ = ["POOL_NAME", "ensure_pool", "create_volume", "delete_volume", "pool_free_bytes", "volume_info"]

POOL_NAME = "vmdeck"
GIB = 1024**3


def ensure_pool(host: Host) -> libvirt.virStoragePool:
    """The `vmdeck` pool, defined, built, started and autostarted on first use."""
    with libvirt_errors("storage pool"):
        try:
            pool = host.conn.storagePoolLookupByName(POOL_NAME)
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise
            root = etree.Element("pool", type="dir")
            etree.SubElement(root, "name").text = POOL_NAME
            target = etree.SubElement(root, "target")
            etree.SubElement(target, "path").text = str(pool_dir())
            pool = host.conn.storagePoolDefineXML(etree.tostring(root, encoding="unicode"), 0)
            pool.build(0)
            pool.setAutostart(1)
        if not pool.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                pool.build(0)
            pool.create(0)
        return pool


def pool_free_bytes(host: Host) -> int:
    pool = ensure_pool(host)
    # A refresh is refused while another client's volume job (a clone, an upload) runs in the
    # pool; the last refreshed figure is then good enough for a "will it fit" check.
    with contextlib.suppress(libvirt.libvirtError):
        pool.refresh(0)
    with libvirt_errors("storage pool"):
        return int(pool.info()[3])


def create_volume(host: Host, name: str, size_gib: float, fmt: str = "qcow2") -> Path:
    """A new thin volume `name` of `size_gib`; refuses a size the pool cannot hold."""
    if size_gib <= 0:
        raise InvalidInput(f"disk size must be more than 0 GiB, got {size_gib:g}", field="size_gib")
    pool = ensure_pool(host)
    capacity = int(size_gib * GIB)
    free = pool_free_bytes(host)
    if capacity > free:
        raise InvalidInput(
            f"disk of {size_gib:g} GiB does not fit: pool '{POOL_NAME}' has {free / GIB:.1f} GiB free",
            field="size_gib",
        )
    with libvirt_errors(f"volume {name}"):
        try:
            pool.storageVolLookupByName(name)
        except libvirt.libvirtError:
            pass
        else:
            raise Conflict(f"volume {name!r} already exists in pool '{POOL_NAME}'")
        root = etree.Element("volume")
        etree.SubElement(root, "name").text = name
        etree.SubElement(root, "capacity", unit="bytes").text = str(capacity)
        etree.SubElement(root, "allocation", unit="bytes").text = "0"
        target = etree.SubElement(root, "target")
        etree.SubElement(target, "format", type=fmt)
        volume = pool.createXML(etree.tostring(root, encoding="unicode"), 0)
        return Path(volume.path())


def delete_volume(host: Host, path: str | Path) -> None:
    with libvirt_errors(f"volume {path}"):
        try:
            volume = host.conn.storageVolLookupByPath(str(path))
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                ensure_pool(host).refresh(0)
                try:
                    volume = host.conn.storageVolLookupByPath(str(path))
                except libvirt.libvirtError:
                    return  # already gone: deleting is idempotent
            else:
                raise
        volume.delete(0)


def volume_info(host: Host, path: str | Path) -> tuple[int, int]:
    """(capacity, allocation) in bytes of the volume at `path`."""
    with libvirt_errors(f"volume {path}"):
        try:
            volume = host.conn.storageVolLookupByPath(str(path))
        except libvirt.libvirtError as err:
            raise NotFound(f"no storage volume at {path}") from err
        _type, capacity, allocation = volume.info()
        return int(capacity), int(allocation)

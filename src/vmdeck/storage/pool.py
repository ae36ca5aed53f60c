"""vmdeck's storage pool: a libvirt `dir` pool holding the qcow2 volumes it creates.

Volumes go through libvirt's storage API (not qemu-img) so that the same code
works against a remote host, and allocation stays thin (qcow2, allocation 0).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from vmdeck.domxml.storage import pool_target_path, pool_xml, volume_xml
from vmdeck.errors import Conflict, HostError, InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import NO_SPACE, POOL_BUSY, StoragePool
from vmdeck.paths import pool_dir, pool_name

__all__ = ["POOL_NAME", "ensure_pool", "create_volume", "delete_volume", "pool_free_bytes", "pool_path",
           "refresh_pool", "volume_info"]

POOL_NAME = "vmdeck"  # the default; $VMDECK_POOL (paths.pool_name) picks another
GIB = 1024**3


def ensure_pool(host: Host) -> StoragePool:
    """The `vmdeck` pool, defined, built, started and autostarted on first use."""
    try:
        pool = host.conn.pool(pool_name())
    except NotFound:
        pool = host.conn.define_pool(pool_xml(pool_name(), pool_dir()))
        pool.build()
        pool.set_autostart()
    if not pool.is_active():
        with contextlib.suppress(VmdeckError):
            pool.build()
        pool.start()
    return pool


def refresh_pool(pool: StoragePool, wait: float = 10.0) -> None:
    """Rescan the pool's folder. libvirt refuses while another client's volume job (a create, a clone,
    an upload) runs in the pool ("pool has asynchronous jobs running"): retry for a bounded while,
    then go on with libvirt's last view, which is good enough for a "will it fit" check."""
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            pool.refresh()
            return
        except VmdeckError as err:
            if err.cause != POOL_BUSY:
                raise
            if time.monotonic() > deadline:
                return
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def pool_free_bytes(host: Host) -> int:
    pool = ensure_pool(host)
    refresh_pool(pool)
    return pool.free_bytes()


def pool_path(pool: StoragePool) -> str:
    """The folder behind a `dir` pool."""
    return pool_target_path(pool.xml())


def create_volume(host: Host, name: str, size_gib: float, fmt: str = "qcow2") -> Path:
    """A new thin volume `name` of `size_gib`; refuses a size the pool cannot hold."""
    if size_gib <= 0:
        raise InvalidInput(f"disk size must be more than 0 GiB, got {size_gib:g}", field="size_gib")
    pool = ensure_pool(host)
    capacity = int(size_gib * GIB)
    free = pool_free_bytes(host)
    if capacity > free:
        raise InvalidInput(
            f"disk of {size_gib:g} GiB does not fit: pool '{pool_name()}' has {free / GIB:.1f} GiB free",
            field="size_gib",
        )
    try:
        pool.volume(name)
    except VmdeckError:
        pass
    else:
        raise Conflict(f"volume {name!r} already exists in pool '{pool_name()}'")
    try:
        volume = pool.create_volume(volume_xml(name, capacity, fmt))
    except Conflict as err:  # created meanwhile by another client
        raise Conflict(f"volume {name!r} already exists in pool '{pool_name()}'") from err
    except VmdeckError as err:
        if err.cause == NO_SPACE:
            raise HostError(f"no space left on {pool_path(pool)} (pool '{pool_name()}') for volume {name}") from err
        raise
    return Path(volume.path())


def delete_volume(host: Host, path: str | Path) -> None:
    try:
        volume = host.conn.volume_at(str(path))
    except NotFound:
        refresh_pool(ensure_pool(host))
        try:
            volume = host.conn.volume_at(str(path))
        except VmdeckError:
            return  # already gone: deleting is idempotent
    volume.delete()


def volume_info(host: Host, path: str | Path) -> tuple[int, int]:
    """(capacity, allocation) in bytes of the volume at `path`."""
    try:
        volume = host.conn.volume_at(str(path))
    except VmdeckError as err:
        raise NotFound(f"no storage volume at {path}") from err
    return volume.info()

"""A VM's disks as the host sees them: files with a virtual size, a host allocation, a backing chain,
a cache mode, request counters and pages in the host page cache (core layer).

The disk list, cache/io modes and backing chain come from the live domain XML
(libvirt fills `<backingStore>` for running VMs); the counters and sizes from
the `block.N.*` fields of libvirt's bulk stats; the host allocation from the
file's st_blocks (what `du` shows); the page-cache residency from mincore(2)
on a read-only mapping of the image, which faults nothing in.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from typing import Any

from vmdeck.domxml.parse import disk_configs

__all__ = ["BackingFile", "DiskHost", "disks_from_xml", "page_cache_bytes", "read_disks", "CACHE_MODES"]

CACHE_MODES = {
    "none": "O_DIRECT: bypasses the host page cache (the guest's own cache is the only one)",
    "writeback": "host page cache; writes done once in the host cache, guest flushes reach the disk",
    "writethrough": "host page cache for reads; every write goes to the disk before it completes",
    "directsync": "O_DIRECT and every write synced",
    "unsafe": "host page cache and guest flushes ignored (fast, loses data on a host crash)",
}
IO_MODES = {
    "native": "Linux AIO (io_submit)",
    "threads": "a pool of QEMU worker threads doing blocking I/O",
    "io_uring": "io_uring",
}


@dataclass(frozen=True)
class BackingFile:
    path: str
    format: str | None


@dataclass
class DiskHost:
    target: str
    device: str
    bus: str
    path: str | None
    format: str | None
    cache: str  # as configured; "default" when the XML leaves it to QEMU
    cache_meaning: str
    io: str
    io_meaning: str
    backing_chain: list[BackingFile] = field(default_factory=list)
    virtual_size_bytes: int | None = None  # what the guest sees
    file_size_bytes: int | None = None  # st_size of the image file
    host_allocated_bytes: int | None = None  # blocks the host file system gave it (st_blocks * 512)
    libvirt_allocation_bytes: int | None = None  # libvirt's "allocation" (qcow2: highest offset written)
    read_reqs: int | None = None
    read_bytes: int | None = None
    write_reqs: int | None = None
    write_bytes: int | None = None
    flush_reqs: int | None = None
    read_time_ns: int | None = None
    write_time_ns: int | None = None
    page_cache_bytes: int | None = None  # bytes of the image file in the host page cache
    page_cache_pct: float | None = None  # ... as a share of the file size
    read_bytes_per_s: float | None = None
    write_bytes_per_s: float | None = None
    read_reqs_per_s: float | None = None
    write_reqs_per_s: float | None = None


def disks_from_xml(xml: str) -> list[DiskHost]:
    """The disks of a (live) domain XML, with their host-side configuration."""
    disks = []
    for disk in disk_configs(xml):
        cache = disk.cache or "default"
        io = disk.io or "default"
        disks.append(DiskHost(
            target=disk.target, device=disk.device, bus=disk.bus, path=disk.path, format=disk.format,
            cache=cache,
            cache_meaning=CACHE_MODES.get(cache, "QEMU's default: writeback (host page cache)"),
            io=io, io_meaning=IO_MODES.get(io, "QEMU's default: threads (worker pool)"),
            backing_chain=[BackingFile(path=path, format=fmt) for path, fmt in disk.backing_chain],
        ))
    return disks


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_PROT_READ, _MAP_SHARED, _MAP_FAILED = 0x1, 0x01, ctypes.c_void_p(-1).value
_CHUNK = 1 << 30  # map 1 GiB at a time: the residency vector stays small (256 Ki entries)
_LOW_BIT = bytes(b & 1 for b in range(256))  # mincore sets bit 0; the other bits are reserved


def page_cache_bytes(path: str) -> tuple[int, int] | None:
    """(bytes of `path` in the host page cache, file size), via mmap + mincore; None if unreadable."""
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        size = os.lseek(fd, 0, os.SEEK_END)  # works for block devices too, unlike st_size
        resident = 0
        offset = 0
        while offset < size:
            length = min(_CHUNK, size - offset)
            addr = _libc.mmap(None, length, _PROT_READ, _MAP_SHARED, fd, offset)
            if addr in (None, _MAP_FAILED):
                return None
            try:
                vec = ctypes.create_string_buffer((length + page - 1) // page)
                if _libc.mincore(addr, length, vec) != 0:
                    return None
                resident += vec.raw.translate(_LOW_BIT).count(1)
            finally:
                _libc.munmap(addr, length)
            offset += length
        return min(resident * page, size), size
    finally:
        os.close(fd)


def _fill_from_stats(disk: DiskHost, stats: dict[str, Any], index: int) -> None:
    prefix = f"block.{index}."

    def get(key: str) -> int | None:
        value = stats.get(prefix + key)
        return int(value) if value is not None else None

    disk.read_reqs, disk.read_bytes = get("rd.reqs"), get("rd.bytes")
    disk.write_reqs, disk.write_bytes = get("wr.reqs"), get("wr.bytes")
    disk.flush_reqs, disk.read_time_ns, disk.write_time_ns = get("fl.reqs"), get("rd.times"), get("wr.times")
    disk.virtual_size_bytes = get("capacity")
    disk.libvirt_allocation_bytes = get("allocation")


def read_disks(xml: str, stats: dict[str, Any], *, page_cache: bool = True) -> list[DiskHost]:
    """Disks of a running VM: XML config + bulk-stats counters + host file facts."""
    disks = disks_from_xml(xml)
    # block.N.name is the target ("vda"); without the BACKING flag there is one entry per disk.
    index_by_target = {stats[k]: int(k.split(".")[1]) for k in stats if k.startswith("block.") and k.endswith(".name")}
    for disk in disks:
        if disk.target in index_by_target:
            _fill_from_stats(disk, stats, index_by_target[disk.target])
        if not disk.path:
            continue  # an empty CD-ROM drive
        try:
            st = os.stat(disk.path)
        except OSError:
            continue
        disk.file_size_bytes = st.st_size
        disk.host_allocated_bytes = st.st_blocks * 512
        if page_cache:
            cached = page_cache_bytes(disk.path)
            if cached is not None:
                disk.page_cache_bytes, size = cached
                if size:
                    disk.file_size_bytes = size
                    disk.page_cache_pct = round(cached[0] / size * 100, 1)
    return disks

"""A "newc" cpio archive writer (the initramfs format), pure Python.

Writing the archive ourselves lets the image hold device nodes (/dev/console)
and root-owned files without mknod/chown on the host, and keeps the output
byte-for-byte reproducible (fixed mtimes, sorted order).
"""

from __future__ import annotations

import gzip
import io
import stat
from dataclasses import dataclass

TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    path: str  # inside the archive, no leading "/"
    mode: int  # full st_mode (type bits + permissions)
    data: bytes = b""  # file contents, or the link target for symlinks
    rdev: tuple[int, int] = (0, 0)  # (major, minor) for device nodes


def _pad4(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


def _header(ino: int, e: Entry, namesize: int, filesize: int) -> bytes:
    # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    fields = (ino, e.mode, 0, 0, 1, 0, filesize, 0, 0, e.rdev[0], e.rdev[1], namesize, 0)
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def write_newc(entries: list[Entry], out: io.BufferedIOBase | io.BytesIO) -> None:
    """Write entries (parents before children is the caller's job) plus the trailer."""
    ino = 1
    for e in list(entries) + [Entry(TRAILER, 0)]:
        name = e.path.lstrip("/").encode() + b"\0"
        hdr = _header(ino if e.path != TRAILER else 0, e, len(name), len(e.data))
        out.write(hdr)
        out.write(name)
        out.write(_pad4(len(hdr) + len(name)))
        out.write(e.data)
        out.write(_pad4(len(e.data)))
        ino += 1


def newc_bytes(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    write_newc(entries, buf)
    return buf.getvalue()


def gzip_newc(entries: list[Entry], level: int = 6) -> bytes:
    return gzip.compress(newc_bytes(entries), compresslevel=level, mtime=0)


def read_newc(blob: bytes) -> list[Entry]:
    """Parse a newc archive (used by tests and to inspect built images)."""
    out: list[Entry] = []
    pos = 0
    while True:
        if blob[pos : pos + 6] != b"070701":
            raise ValueError(f"bad cpio magic at offset {pos}")
        f = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        pos += 110
        name = blob[pos : pos + namesize - 1].decode()
        pos += namesize
        pos += (4 - pos % 4) % 4
        data = blob[pos : pos + filesize]
        pos += filesize
        pos += (4 - pos % 4) % 4
        if name == TRAILER:
            return out
        out.append(Entry(name, mode, data, (rmaj, rmin)))


class Tree:
    """An in-memory file tree that turns into cpio entries (dirs created implicitly)."""

    def __init__(self) -> None:
        self._items: dict[str, Entry] = {}

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._items:
                self._items[d] = Entry(d, stat.S_IFDIR | 0o755)

    @staticmethod
    def _norm(path: str) -> str:
        p = path.strip("/")
        if not p or ".." in p.split("/"):
            raise ValueError(f"bad archive path: {path!r}")
        return p

    def dir(self, path: str, perm: int = 0o755) -> None:
        p = self._norm(path)
        self._parents(p)
        self._items[p] = Entry(p, stat.S_IFDIR | perm)

    def file(self, path: str, data: bytes | str, perm: int = 0o644) -> None:
        p = self._norm(path)
        self._parents(p)
        if isinstance(data, str):
            data = data.encode()
        self._items[p] = Entry(p, stat.S_IFREG | perm, data)

    def symlink(self, path: str, target: str) -> None:
        p = self._norm(path)
        self._parents(p)
        self._items[p] = Entry(p, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, path: str, major: int, minor: int, perm: int = 0o600) -> None:
        p = self._norm(path)
        self._parents(p)
        self._items[p] = Entry(p, stat.S_IFCHR | perm, b"", (major, minor))

    def __contains__(self, path: str) -> bool:
        return path.strip("/") in self._items

    def entries(self) -> list[Entry]:
        # sorted: a parent directory always sorts before its children
        return [self._items[k] for k in sorted(self._items)]

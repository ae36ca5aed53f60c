"""The host registry: which libvirt hosts this vmdeck manages (core layer, SQLite through sqlite3).

The registry lives in the same SQLite file as `vmdeck serve`'s accounts (vmdeck.paths.database_path),
in the `hosts` table whose schema the API's Alembic migration `0002_hosts` owns. The CLI must work on
a machine where the server never ran, so this module creates the same table when it is missing (the
migration then keeps it). Reading is one small query with the stdlib's sqlite3: `vmdeck list` pays
no ORM import. A database without the table (or no file at all) means "only the local host".
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vmdeck.errors import Conflict, InvalidInput, NotFound
from vmdeck.paths import database_path

if TYPE_CHECKING:
    import sqlite3

__all__ = ["HostEntry", "LOCAL", "Registry", "DEFAULT_LOCAL_URI", "check_entry"]

DEFAULT_LOCAL_URI = "qemu:///system"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
# No whitespace or control characters: libvirt refuses a URI with a NUL in it with ValueError, not an error of its own.
_URI = re.compile(r"[a-z0-9+]+://[^\s\x00-\x1f\x7f]*")

_SCHEMA = """CREATE TABLE IF NOT EXISTS hosts (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    uri VARCHAR(1024),
    vcpu_ratio FLOAT NOT NULL DEFAULT 4.0,
    reserve_mib INTEGER NOT NULL DEFAULT 512,
    draining BOOLEAN NOT NULL DEFAULT 0,
    added_at FLOAT NOT NULL DEFAULT 0
)"""


@dataclass(frozen=True)
class HostEntry:
    name: str
    uri: str | None  # None: the default local connection
    vcpu_ratio: float = 4.0  # vCPUs that may be allocated per physical CPU
    reserve_mib: int = 512  # memory kept for the host itself, never given to VMs
    draining: bool = False  # no new VM is placed here

    @property
    def connect_uri(self) -> str:
        return self.uri or DEFAULT_LOCAL_URI

    @property
    def migrate_uri(self) -> str | None:
        """Where QEMU on this host receives a live migration: tcp://<the address vmdeck reaches it at>.

        libvirt's default is the host's own hostname, which on a multi-homed host (or a test namespace
        sharing the machine's hostname) names the wrong address; the registered URI's address is the
        one known to work. None for a local URI (libvirt's default applies).
        """
        parsed = urlsplit(self.connect_uri)
        if not parsed.hostname:
            return None
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        return f"tcp://{host}"


LOCAL = HostEntry("local", None)


def check_entry(entry: HostEntry) -> None:
    """InvalidInput naming the field when `entry` cannot be registered as it is."""
    if not _NAME.match(entry.name):
        raise InvalidInput(f"invalid host name {entry.name!r}: use lower-case letters, digits, '.', '_' and '-'",
                           field="name")
    if entry.uri is not None and not _URI.fullmatch(entry.uri):
        raise InvalidInput(f"invalid libvirt URI {entry.uri!r} (e.g. qemu+ssh://host2/system)", field="uri")
    if not 0 < entry.vcpu_ratio <= 64:
        raise InvalidInput(f"vcpu ratio must be above 0 and at most 64, got {entry.vcpu_ratio}", field="vcpu_ratio")
    if not 0 <= entry.reserve_mib <= 1 << 30:
        raise InvalidInput(f"reserve must be 0 or more MiB, got {entry.reserve_mib}", field="reserve_mib")


_MTIME_GRANULARITY_NS = 100_000_000  # generous: Linux file times move in jiffies (1-10 ms)


class Registry:
    """The `hosts` table of one database file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or database_path()
        # The last rows read and the database files' state they were read at: `vmdeck serve` consults
        # the registry on every request, and a stat of two files costs microseconds where opening
        # SQLite costs a millisecond of the event loop. Any write (this process or `vmdeck host add`
        # in another) changes the files' size or mtime, so a change is seen at the next call.
        self._cached: tuple[tuple[tuple[int, int], ...], list[HostEntry]] | None = None

    def _files_state(self) -> tuple[tuple[int, int], ...]:
        state = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                info = path.stat()
            except FileNotFoundError:
                state.append((-1, -1))
            else:
                state.append((info.st_mtime_ns, info.st_size))
        return tuple(state)

    def _open(self, create: bool) -> sqlite3.Connection | None:
        if not create and not self.path.exists():
            return None
        import sqlite3  # here: `vmdeck list` on a machine without a database does not pay for it

        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        if create:
            with conn:
                missing = not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'hosts'").fetchone()
                conn.execute(_SCHEMA)
                if missing:
                    conn.execute("INSERT INTO hosts (name, uri, added_at) VALUES ('local', NULL, 0)")
            self.path.chmod(0o600)
        return conn

    def entries(self) -> list[HostEntry]:
        """Every registered host, `local` first; just `local` when nothing was ever registered."""
        state = self._files_state()
        cached = self._cached
        if cached is not None and cached[0] == state:
            return list(cached[1])
        rows = self._read_entries()
        # File times are coarse (a kernel tick): a write in the same tick as the one just read would
        # leave the state unchanged. Only a state older than that granularity is trusted for the cache.
        settled = time.time_ns() - _MTIME_GRANULARITY_NS
        self._cached = (state, rows) if all(mtime < settled for mtime, _size in state) else None
        return list(rows)

    def _read_entries(self) -> list[HostEntry]:
        conn = self._open(create=False)
        if conn is None:
            return [LOCAL]
        import sqlite3

        try:
            rows = conn.execute("SELECT name, uri, vcpu_ratio, reserve_mib, draining FROM hosts "
                                "ORDER BY name != 'local', added_at, name").fetchall()
        except sqlite3.OperationalError:  # a database from before the registry: no table yet
            return [LOCAL]
        finally:
            conn.close()
        return [HostEntry(name, uri, float(ratio), int(reserve), bool(draining))
                for name, uri, ratio, reserve, draining in rows]

    def get(self, name: str) -> HostEntry:
        for entry in self.entries():
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in self.entries()) or "none"
        raise NotFound(f"no host named {name!r} in the registry (known: {known})")

    def add(self, entry: HostEntry) -> HostEntry:
        check_entry(entry)
        conn = self._open(create=True)
        assert conn is not None
        try:
            with conn:
                if conn.execute("SELECT 1 FROM hosts WHERE name = ?", (entry.name,)).fetchone():
                    raise Conflict(f"a host named {entry.name!r} is already registered")
                if entry.uri and conn.execute("SELECT name FROM hosts WHERE uri = ?", (entry.uri,)).fetchone():
                    raise Conflict(f"{entry.uri} is already registered")
                conn.execute("INSERT INTO hosts (name, uri, vcpu_ratio, reserve_mib, draining, added_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (entry.name, entry.uri, entry.vcpu_ratio,
                                                           entry.reserve_mib, int(entry.draining), time.time()))
        finally:
            conn.close()
        return entry

    def update(self, name: str, *, vcpu_ratio: float | None = None, reserve_mib: int | None = None,
               draining: bool | None = None) -> HostEntry:
        current = self.get(name)
        changed = replace(current, vcpu_ratio=current.vcpu_ratio if vcpu_ratio is None else vcpu_ratio,
                          reserve_mib=current.reserve_mib if reserve_mib is None else reserve_mib,
                          draining=current.draining if draining is None else draining)
        check_entry(changed)
        conn = self._open(create=True)
        assert conn is not None
        try:
            with conn:
                conn.execute("UPDATE hosts SET vcpu_ratio = ?, reserve_mib = ?, draining = ? WHERE name = ?",
                             (changed.vcpu_ratio, changed.reserve_mib, int(changed.draining), name))
        finally:
            conn.close()
        return changed

    def remove(self, name: str) -> HostEntry:
        entry = self.get(name)
        conn = self._open(create=True)
        assert conn is not None
        try:
            with conn:
                conn.execute("DELETE FROM hosts WHERE name = ?", (name,))
        finally:
            conn.close()
        return entry

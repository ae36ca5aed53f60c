"""The host registry: which libvirt hosts this vmdeck manages (core layer, in the control plane's database).

The registry is the `hosts` table of the database `vmdeck serve` uses (vmdeck.store.db: a SQLite file,
by default the one of vmdeck.paths.database_path, or PostgreSQL), whose schema the store's Alembic
migrations own. Writes go through the store (which creates and migrates the database when the server
never ran). Reading a SQLite file is one small query with the stdlib's sqlite3, cached on the file's
state: `vmdeck list` must not pay for importing SQLAlchemy (tests/unit/test_cli_fast.py). A SQLite
database without the table (or no file at all) means "only the local host".
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vmdeck.errors import Conflict, InvalidInput, NotFound
from vmdeck.paths import database_setting

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from vmdeck.store.db import Location

__all__ = ["HostEntry", "LOCAL", "Registry", "DEFAULT_LOCAL_URI", "check_entry"]

DEFAULT_LOCAL_URI = "qemu:///system"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
# No whitespace or control characters: libvirt refuses a URI with a NUL in it with ValueError, not an error of its own.
_URI = re.compile(r"[a-z0-9+]+://[^\s\x00-\x1f\x7f]*")

# A server on PostgreSQL reads the registry at most this often; a `host add` on another server is seen
# within it (this process's own writes at once).
_SHARED_CACHE_S = 1.0


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
    """The `hosts` table of the control plane's database."""

    def __init__(self, where: str | Path | Location | None = None) -> None:
        self._where = where
        self.path = self._file(where)  # the SQLite file; None on PostgreSQL
        # The last rows read and the database files' state they were read at: `vmdeck serve` consults
        # the registry on every request, and a stat of two files costs microseconds where opening
        # SQLite costs a millisecond of the event loop. Any write (this process or `vmdeck host add`
        # in another) changes the files' size or mtime, so a change is seen at the next call.
        self._cached: tuple[tuple[tuple[int, int], ...], list[HostEntry]] | None = None
        self._shared: tuple[float, list[HostEntry]] | None = None
        self._db: sessionmaker[Session] | None = None

    @staticmethod
    def _file(where: object) -> Path | None:
        """The SQLite file `where` names, decided without importing the store (the CLI's fast path)."""
        if where is None:
            where = database_setting()
        if isinstance(where, Path):
            return where
        if isinstance(where, str):
            if where.startswith("sqlite:///"):
                return Path(where[len("sqlite:///"):])
            if "://" not in where:
                return Path(where)
            return None
        return getattr(where, "path", None)

    @property
    def location(self) -> Location:
        from vmdeck.store.db import locate

        return locate(self._where)

    def _store(self) -> sessionmaker[Session]:
        if self._db is None:
            from vmdeck.store.db import open_database

            self._db = open_database(self.location)
        return self._db

    def _files_state(self) -> tuple[tuple[int, int], ...]:
        assert self.path is not None
        state = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                info = path.stat()
            except FileNotFoundError:
                state.append((-1, -1))
            else:
                state.append((info.st_mtime_ns, info.st_size))
        return tuple(state)

    def entries(self) -> list[HostEntry]:
        """Every registered host, `local` first; just `local` when nothing was ever registered."""
        if self.path is None:
            shared = self._shared
            if shared is not None and time.monotonic() - shared[0] < _SHARED_CACHE_S:
                return list(shared[1])
            rows = self._query_entries()
            self._shared = (time.monotonic(), rows)
            return list(rows)
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

    def _query_entries(self) -> list[HostEntry]:
        from sqlalchemy import select

        from vmdeck.store.db import HostRow

        with self._store()() as s:
            rows = s.scalars(select(HostRow).order_by(HostRow.name != "local", HostRow.added_at, HostRow.name)).all()
            return [HostEntry(r.name, r.uri, float(r.vcpu_ratio), int(r.reserve_mib), bool(r.draining)) for r in rows]

    def _read_entries(self) -> list[HostEntry]:
        """The SQLite file's rows through the stdlib (no SQLAlchemy import), read-only: nothing is created."""
        assert self.path is not None
        if not self.path.exists():
            return [LOCAL]
        import sqlite3  # here: `vmdeck list` on a machine without a database does not pay for it

        conn = sqlite3.connect(self.path, timeout=10)
        try:
            rows = conn.execute("SELECT name, uri, vcpu_ratio, reserve_mib, draining FROM hosts "
                                "ORDER BY name != 'local', added_at, name").fetchall()
        except sqlite3.OperationalError:  # a database from before the registry: no table yet
            return [LOCAL]
        finally:
            conn.close()
        return [HostEntry(name, uri, float(ratio), int(reserve), bool(draining))
                for name, uri, ratio, reserve, draining in rows]

    def _changed(self) -> None:
        self._cached = None
        self._shared = None

    def get(self, name: str) -> HostEntry:
        for entry in self.entries():
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in self.entries()) or "none"
        raise NotFound(f"no host named {name!r} in the registry (known: {known})")

    def add(self, entry: HostEntry) -> HostEntry:
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        from vmdeck.store.db import HostRow

        check_entry(entry)
        try:
            with self._store().begin() as s:
                if s.get(HostRow, entry.name) is not None:
                    raise Conflict(f"a host named {entry.name!r} is already registered")
                if entry.uri and s.scalar(select(HostRow.name).where(HostRow.uri == entry.uri)) is not None:
                    raise Conflict(f"{entry.uri} is already registered")
                s.add(HostRow(name=entry.name, uri=entry.uri, vcpu_ratio=entry.vcpu_ratio,
                              reserve_mib=entry.reserve_mib, draining=entry.draining, added_at=time.time()))
        except IntegrityError:  # another process registered the name between our check and our insert
            raise Conflict(f"a host named {entry.name!r} is already registered") from None
        finally:
            self._changed()
        return entry

    def update(self, name: str, *, vcpu_ratio: float | None = None, reserve_mib: int | None = None,
               draining: bool | None = None) -> HostEntry:
        from sqlalchemy import update

        from vmdeck.store.db import HostRow

        current = self.get(name)
        changed = replace(current, vcpu_ratio=current.vcpu_ratio if vcpu_ratio is None else vcpu_ratio,
                          reserve_mib=current.reserve_mib if reserve_mib is None else reserve_mib,
                          draining=current.draining if draining is None else draining)
        check_entry(changed)
        with self._store().begin() as s:
            s.execute(update(HostRow).where(HostRow.name == name).values(
                vcpu_ratio=changed.vcpu_ratio, reserve_mib=changed.reserve_mib, draining=changed.draining))
        self._changed()
        return changed

    def remove(self, name: str) -> HostEntry:
        from sqlalchemy import delete

        from vmdeck.store.db import HostRow

        entry = self.get(name)
        with self._store().begin() as s:
            s.execute(delete(HostRow).where(HostRow.name == name))
        self._changed()
        return entry

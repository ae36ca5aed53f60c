"""Placement reservations: a create's claim on a host from the placement decision until its VM runs
(core layer, SQLite through sqlite3).

libvirt counts a VM's memory and vCPUs only once it runs, and a create takes a while between choosing
a host and starting the VM. Without a claim, two creates at once see the same free memory and both
pick the host that has room for one. So every placement decision is taken inside one SQLite write
transaction (BEGIN IMMEDIATE: one decision at a time, across `vmdeck serve` and the CLI, which share
the database of the host registry), sees the claims of the creates still in progress, and records its
own before it commits. The claim is dropped when the create ends, whether it failed or its VM runs;
a claim whose VM runs already is not counted again (vmdeck.cluster.placement.with_pending).

A process that died mid-create cannot drop its claims: a claim whose owner process is gone (its pid
and start time, read from /proc) no longer counts, nor one older than STALE_S.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vmdeck.paths import create_private

__all__ = ["Claim", "PlacementBook", "Decision", "STALE_S"]

# A create (a volume copied from an image, a guest started) is long done by then.
STALE_S = 3600.0

_SCHEMA = """CREATE TABLE IF NOT EXISTS placements (
    id INTEGER NOT NULL PRIMARY KEY,
    host VARCHAR(64) NOT NULL,
    vm VARCHAR(200) NOT NULL,
    vcpus INTEGER NOT NULL,
    memory_mib INTEGER NOT NULL,
    owner VARCHAR(64) NOT NULL,
    created_at FLOAT NOT NULL
)"""


@dataclass(frozen=True)
class Claim:
    host: str
    vm: str
    vcpus: int
    memory_mib: int


def _process_token(pid: int) -> str | None:
    """pid:start time of a live process (the start time tells a reused pid apart), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counted after the command name, which may itself hold spaces and ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return f"{pid}:{fields[19]}"


def _expired(owner: str, created_at: float) -> bool:
    """A claim that no longer counts: older than STALE_S, or its process is gone."""
    return created_at < time.time() - STALE_S or _gone(owner)


def _gone(owner: str) -> bool:
    pid, _, _start = owner.partition(":")
    if not pid.isdigit() or not Path("/proc/self/stat").exists():
        return False  # no /proc to ask: only the age expires it
    return _process_token(int(pid)) != owner


class Decision:
    """The open write transaction of one placement decision."""

    def __init__(self, conn: sqlite3.Connection, owner: str) -> None:
        self._conn = conn
        self._owner = owner

    def claims(self) -> list[Claim]:
        rows = self._conn.execute("SELECT host, vm, vcpus, memory_mib FROM placements ORDER BY id").fetchall()
        return [Claim(str(h), str(v), int(c), int(m)) for h, v, c, m in rows]

    def hold(self, claim: Claim) -> int:
        cur = self._conn.execute("INSERT INTO placements (host, vm, vcpus, memory_mib, owner, created_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?)",
                                 (claim.host, claim.vm, claim.vcpus, claim.memory_mib, self._owner, time.time()))
        assert cur.lastrowid is not None
        return cur.lastrowid


class PlacementBook:
    """The `placements` table of one database file (the host registry's)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The file may become the server's database, which holds password hashes: private from its birth.
        # Only created when missing: opening and closing the live database would drop SQLite's locks.
        create_private(self.path)
        # Autocommit mode: BEGIN and COMMIT are said here. Placement decisions queue behind each other
        # for as long as a fleet-wide capacity query can take (the fleet's deadlines), not fail.
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.execute(_SCHEMA)
        return conn

    @contextlib.contextmanager
    def deciding(self) -> Iterator[Decision]:
        """One placement decision at a time: the body sees every live claim and may add its own."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute("SELECT id, owner, created_at FROM placements").fetchall()
                expired = [(rid,) for rid, owner, created in rows if _expired(str(owner), created)]
                conn.executemany("DELETE FROM placements WHERE id = ?", expired)
                yield Decision(conn, _process_token(os.getpid()) or str(os.getpid()))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def release(self, claim_id: int) -> None:
        conn = self._connect()
        try:
            with contextlib.closing(conn.cursor()) as cur:
                cur.execute("DELETE FROM placements WHERE id = ?", (claim_id,))
        finally:
            conn.close()

    def claims(self) -> list[Claim]:
        """The claims held now, expired ones deleted (tests)."""
        with self.deciding() as decision:
            return decision.claims()

    def live_claims(self) -> list[Claim]:
        """The claims that count now, for reports: read without the decision's write lock (a report does
        not queue behind a placement that waits on a slow host); expired claims are skipped, not deleted."""
        if not self.path.exists():
            return []
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            rows = conn.execute("SELECT host, vm, vcpus, memory_mib, owner, created_at FROM placements "
                                "ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # no placement was ever decided: no table yet
            return []
        finally:
            conn.close()
        return [Claim(str(h), str(v), int(c), int(m)) for h, v, c, m, owner, created in rows
                if not _expired(str(owner), created)]

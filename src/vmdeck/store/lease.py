"""Leases: the one expiry rule for claims, placement claims and quota reservations alike (store layer).

A claim is written with its owner (this process: host name, pid and a random part, so a restarted
server is a new owner) and an expiry LEASE_S ahead. While the process holds claims on a database, a
thread renews the expiry of all of them every LEASE_S / 3. A process that dies, SIGKILLed or its
machine gone, renews nothing: its claims stop counting once their lease lapses, on every server
sharing the database, without any server having to tell whether another one's process is alive.

Expiry compares with this machine's clock: servers sharing a PostgreSQL database keep their clocks
in step (NTP), as they must anyway for sessions and tokens to expire alike.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, select, update

from vmdeck.store.db import Placement, Reservation

__all__ = ["LEASE_S", "owner", "expiry", "held", "renew", "forget_dead_here"]

log = logging.getLogger(__name__)

# Long enough that a loaded server's renewal is never late, short enough that a dead server's claims
# are soon forgotten. Tests shorten it ($VMDECK_CLAIM_LEASE_S) to watch a killed server's claims lapse.
LEASE_S = float(os.environ.get("VMDECK_CLAIM_LEASE_S") or 60.0)

def _here() -> str:
    """This machine and pid namespace: whose pids this process can check (host name, boot, pid namespace)."""
    try:
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()[:8]
        pidns = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        boot, pidns = "?", "?"
    return f"{socket.gethostname()[:100]}/{boot}/{pidns}"


_HERE = _here()
_OWNER = f"{_HERE}:{os.getpid()}:{secrets.token_hex(4)}"


def owner() -> str:
    """This process, as the owner of its claims."""
    return _OWNER


def expiry() -> float:
    return time.time() + LEASE_S


def _alive(claim_owner: str) -> bool:
    try:
        os.kill(int(claim_owner.split(":")[1]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, IndexError):
        return True
    return True


def forget_dead_here(conn: Connection) -> None:
    """Claims held by a process of this machine that is gone (a command SIGKILLed mid-create) stop
    counting now: here, whether the owner lives is known without waiting for its lease to lapse. Claims
    of other machines, and released claims (kept for counts in flight), are left to the lease."""
    for table in (Placement, Reservation):
        owners = conn.execute(select(table.owner).distinct().where(
            table.owner.startswith(f"{_HERE}:", autoescape=True), table.released_seq.is_(None))).scalars().all()
        dead = [o for o in owners if not _alive(o)]
        if dead:
            conn.execute(update(table).where(table.owner.in_(dead), table.released_seq.is_(None)).values(expires_at=0.0))


def renew(engine: Engine) -> None:
    """Push the expiry of every claim this process holds on `engine`'s database LEASE_S ahead."""
    until = expiry()
    with engine.begin() as conn:
        for table in (Placement, Reservation):
            conn.execute(update(table).where(table.owner == _OWNER, table.released_seq.is_(None))
                         .values(expires_at=until))


class _Renewer:
    """One thread per process, running while any claim is held; one count of holders per database."""

    def __init__(self) -> None:
        self._holders: dict[Engine, int] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, engine: Engine) -> None:
        with self._lock:
            self._holders[engine] = self._holders.get(engine, 0) + 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="vmdeck-claim-lease", daemon=True)
                self._thread.start()

    def drop(self, engine: Engine) -> None:
        with self._lock:
            left = self._holders.get(engine, 0) - 1
            if left > 0:
                self._holders[engine] = left
            else:
                self._holders.pop(engine, None)

    def _run(self) -> None:
        while True:
            self._wake.wait(LEASE_S / 3)
            with self._lock:
                engines = list(self._holders)
                if not engines:
                    self._thread = None
                    return
            for engine in engines:
                try:
                    renew(engine)
                except Exception as error:  # the database is away: try again at the next turn
                    log.warning("cannot renew the lease of this server's claims: %s", error)


_RENEWER = _Renewer()


@contextmanager
def held(engine: Engine) -> Iterator[None]:
    """Keep this process's claims on `engine`'s database alive while the body runs."""
    _RENEWER.hold(engine)
    try:
        yield
    finally:
        _RENEWER.drop(engine)

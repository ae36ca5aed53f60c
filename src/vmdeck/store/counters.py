"""Short exclusive transactions for claims, and the counters that let a decision be taken outside them
(store layer).

A claim (a quota reservation, a placement) is decided on a count of what libvirt has, and that count
asks every host: seconds, not something to hold the database's write lock across. So the count is
taken first, with no lock, noting the claim kind's counter (`placements`, `quota:<project>`); the
decision then runs in a short exclusive transaction. A claim released after the count began carries
the counter's newer value (released_seq) and still counts for that decision: the count may have
missed its VM, and when it did not, the VM is seen and the claim is not counted twice.

Exclusive: on SQLite BEGIN IMMEDIATE (one writer at a time, across processes); on PostgreSQL the
counter's row is locked (SELECT ... FOR UPDATE): one decision per kind at a time, across servers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vmdeck.store.db import Counter

__all__ = ["value", "exclusive", "bump"]


def _ensure(conn: Connection, name: str) -> None:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert(Counter).values(name=name, value=0).on_conflict_do_nothing())


def value(engine: Engine, name: str) -> int:
    """The counter now (0 before its first release): read before counting, without a lock."""
    with engine.connect() as conn:
        return int(conn.scalar(select(Counter.value).where(Counter.name == name)) or 0)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[Connection]:
    """A transaction no other decision of kind `name` runs beside; committed when the body ends."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            # The sqlite3 module has not begun a transaction yet (it would at the first write, DEFERRED):
            # IMMEDIATE takes the write lock now, so two decisions never read the same state.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            _ensure(conn, name)
        else:
            _ensure(conn, name)
            conn.execute(select(Counter.value).where(Counter.name == name).with_for_update())
        yield conn


def bump(conn: Connection, name: str) -> int:
    """Inside `exclusive(name)`: the counter's next value, for a claim being released."""
    conn.execute(update(Counter).where(Counter.name == name).values(value=Counter.value + 1))
    return int(conn.scalar(select(Counter.value).where(Counter.name == name)) or 0)

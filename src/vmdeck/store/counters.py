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
Placement decisions use `exclusive`; a quota decision locks its project's row instead
(vmdeck.store.quota), which it reads anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vmdeck.store.db import Counter

__all__ = ["value", "exclusive", "immediate", "bump"]

# Counters this process knows exist (inserted once; the row never goes away): one statement less per decision.
_ENSURED: set[tuple[str, str]] = set()


def _insert(conn: Connection):  # type: ignore[no-untyped-def]
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def _ensure(engine: Engine, name: str) -> None:
    """The counter's row, which the exclusive transaction locks: made once, committed on its own (a rolled
    back decision must not take it away)."""
    key = (str(engine.url), name)
    if key not in _ENSURED:
        with engine.begin() as conn:
            conn.execute(_insert(conn)(Counter).values(name=name, value=0).on_conflict_do_nothing())
        _ENSURED.add(key)


def value(engine: Engine | Connection, name: str) -> int:
    """The counter now (0 before its first release): read before counting, without a lock."""
    if isinstance(engine, Connection):
        return int(engine.scalar(select(Counter.value).where(Counter.name == name)) or 0)
    with engine.connect() as conn:
        return int(conn.scalar(select(Counter.value).where(Counter.name == name)) or 0)


def immediate(conn: Connection) -> None:
    """At the start of a transaction on SQLite: take the write lock now. The sqlite3 module has not begun a
    transaction yet (it would at the first write, DEFERRED), so two decisions never read the same state."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[Connection]:
    """A transaction no other decision of kind `name` runs beside; committed when the body ends."""
    _ensure(engine, name)
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            immediate(conn)
        else:
            lock = select(Counter.value).where(Counter.name == name).with_for_update()
            if conn.execute(lock).first() is None:  # the database was made anew under this process
                conn.execute(_insert(conn)(Counter).values(name=name, value=0).on_conflict_do_nothing())
                conn.execute(lock)
        yield conn


def bump(conn: Connection, name: str) -> int:
    """The counter's next value, for a claim being released: one atomic statement (created at its first use)."""
    stmt = _insert(conn)(Counter).values(name=name, value=1)
    stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={"value": Counter.value + 1})
    return int(conn.execute(stmt.returning(Counter.value)).scalar_one())

"""Upgrades lose nothing: a database made at any past revision, with rows in every table, keeps every row
when today's vmdeck opens it (SQLite and PostgreSQL).

SQLite once lost every session and API token of a 0001 database: 0002 copies `users` to add a column
(Alembic's batch mode), and with foreign keys on, dropping the old table cascaded to them.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from pg_support import PgServer, pg_server  # noqa: F401 (a fixture)
from vmdeck.store.db import HEAD_REVISION, forget_engine, open_database

ROWS = 2


def _revisions() -> list[str]:
    config = Config()
    config.set_main_option("script_location", str(resources.files("vmdeck.store") / "migrations"))
    script = ScriptDirectory.from_config(config)
    return [r.revision for r in reversed(list(script.walk_revisions())) if r.revision != HEAD_REVISION]


PAST = _revisions()


def _config(engine: sa.Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("vmdeck.store") / "migrations"))
    config.attributes["engine"] = engine
    return config


def _value(table: str, column: sa.Column[Any], i: int) -> Any:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.DateTime):
        return dt.datetime(2026, 11, 1 + i, 12, 30, 15)
    if isinstance(kind, sa.Integer):
        return 100 + i
    if isinstance(kind, sa.Float):
        return 1.5 + i
    if isinstance(kind, sa.Text):
        return f'["{table}-{i}"]'
    if isinstance(kind, sa.String):
        text = f"{table[:6]}-{column.name[:8]}-{i}"
        return text[: kind.length] if kind.length else text
    raise AssertionError(f"no test value for {table}.{column.name} ({kind!r})")


def _fill(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """ROWS rows in every table, each foreign key pointing at a row of its table; what the tables then hold."""
    meta = sa.MetaData()
    meta.reflect(engine)
    inserted: dict[str, list[dict[str, Any]]] = {}
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            for i in range(ROWS):
                row = {}
                for column in table.columns:
                    targets = list(column.foreign_keys)
                    if targets:
                        ref = targets[0].column
                        row[column.name] = inserted[ref.table.name][i][ref.name]
                    else:
                        row[column.name] = _value(table.name, column, i)
                conn.execute(table.insert().values(**row))
                inserted.setdefault(table.name, []).append(row)
    return _dump(engine, [t for t in inserted])


def _dump(engine: sa.Engine, tables: list[str]) -> dict[str, list[dict[str, Any]]]:
    meta = sa.MetaData()
    meta.reflect(engine, only=tables)
    with engine.connect() as conn:
        return {name: [dict(r._mapping) for r in conn.execute(sa.select(meta.tables[name]))] for name in tables}


def _kept(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]) -> None:
    for table, rows in before.items():
        assert rows, table
        # Every old row is there with every old value; new columns may have been added beside them.
        now = [{k: r[k] for k in rows[0]} for r in after[table]]
        key = repr
        assert sorted(now, key=key) == sorted(rows, key=key), table


@pytest.mark.parametrize("revision", PAST)
def test_sqlite_database_from_every_past_revision_keeps_every_row(tmp_path: Path, revision: str) -> None:
    path = tmp_path / "vmdeck.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    command.upgrade(_config(engine), revision)
    before = _fill(engine)
    engine.dispose()
    open_database(path)  # what `vmdeck serve` and the admin CLI do at start
    after_engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with after_engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD_REVISION
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        _kept(before, _dump(after_engine, list(before)))
    finally:
        after_engine.dispose()
        forget_engine(path)


def test_a_0001_admin_keeps_its_api_token_through_the_upgrade(tmp_path: Path) -> None:
    # The case a user met: an admin and a token made by vmdeck at 0001, then today's accounts code.
    from vmdeck.store.accounts import Accounts

    path = tmp_path / "vmdeck.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    command.upgrade(_config(engine), "0001")
    from vmdeck.store.accounts import token_digest

    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO users (id, username, password_hash, is_admin, created_at) "
                             "VALUES (1, 'admin', 'x', 1, '2026-11-01 00:00:00')")
        conn.exec_driver_sql("INSERT INTO api_tokens (name, token_hash, prefix, user_id, created_at) VALUES "
                             f"('ci', '{token_digest('vmd_secret')}', 'vmd_sec', 1, '2026-11-01 00:00:00')")
    engine.dispose()
    accounts = Accounts(open_database(path), 3600.0)
    principal = accounts.from_token("vmd_secret")
    assert principal is not None and principal.username == "admin"
    forget_engine(path)


@pytest.mark.parametrize("revision", PAST)
def test_postgresql_database_from_every_past_revision_keeps_every_row(pg_server: PgServer,  # noqa: F811
                                                                      revision: str) -> None:
    url = pg_server.new_database()
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        command.upgrade(_config(engine), revision)
        before = _fill(engine)
        open_database(url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD_REVISION
        _kept(before, _dump(engine, list(before)))
    finally:
        engine.dispose()
        forget_engine(url)
        pg_server.drop_database(url)

"""open_database skips Alembic for a database already at HEAD_REVISION: that constant must be the head."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from vmdeck.api.db import HEAD_REVISION, open_database


def test_head_revision_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(resources.files("vmdeck.api") / "migrations"))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_an_old_database_is_still_migrated(tmp_path: Path) -> None:
    path = tmp_path / "web.sqlite"
    open_database(path)
    with sqlite3.connect(path) as conn:  # pretend it was made before the newest migration
        conn.execute("DROP TABLE hosts")
        conn.execute("UPDATE alembic_version SET version_num = '0002'")
    open_database(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD_REVISION,)]
        assert conn.execute("SELECT name FROM hosts").fetchall() == [("local",)]

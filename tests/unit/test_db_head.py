"""open_database skips Alembic for a database already at HEAD_REVISION: that constant must be the head."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from vmdeck.store.db import HEAD_REVISION, open_database


def test_head_revision_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(resources.files("vmdeck.store") / "migrations"))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_an_old_database_is_still_migrated(tmp_path: Path) -> None:
    # A database one migration behind (made by the previous release) must still be brought to the head.
    from alembic import command
    from sqlalchemy import create_engine

    from vmdeck.store.db import _alembic_config

    path = tmp_path / "web.sqlite"
    config = _alembic_config(create_engine(f"sqlite:///{path}"))
    previous = ScriptDirectory.from_config(config).get_revision(HEAD_REVISION).down_revision
    command.upgrade(config, str(previous))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(previous,)]
    open_database(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD_REVISION,)]

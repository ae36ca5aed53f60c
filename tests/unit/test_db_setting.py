"""The database setting (`vmdeck serve --db`, the admin CLI's --db, $VMDECK_DB): a file, sqlite:///PATH or
postgresql://...; anything else is a one-line error with exit code 2, and nothing is created. A database
file another user could have planted in a world-writable folder is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vmdeck.errors import InvalidInput
from vmdeck.store.db import locate, open_database


@pytest.mark.parametrize("setting, url, path", [
    ("/var/lib/vmdeck/web/vmdeck.sqlite", "sqlite:////var/lib/vmdeck/web/vmdeck.sqlite",
     "/var/lib/vmdeck/web/vmdeck.sqlite"),
    ("db/vmdeck.sqlite", "sqlite:///db/vmdeck.sqlite", "db/vmdeck.sqlite"),
    ("sqlite:////srv/vmdeck.sqlite", "sqlite:////srv/vmdeck.sqlite", "/srv/vmdeck.sqlite"),
    ("sqlite:///rel.sqlite", "sqlite:///rel.sqlite", "rel.sqlite"),
    ("postgresql://vmdeck@db.example:5433/vmdeck", "postgresql+psycopg://vmdeck@db.example:5433/vmdeck", None),
    ("postgres://vmdeck:pw@db/vmdeck", "postgresql+psycopg://vmdeck:pw@db/vmdeck", None),
    ("postgresql+psycopg://db/vmdeck", "postgresql+psycopg://db/vmdeck", None),
])
def test_settings_vmdeck_uses(setting: str, url: str, path: str | None) -> None:
    location = locate(setting)
    assert (location.url, str(location.path) if location.path else None) == (url, path)


def test_a_password_is_never_shown() -> None:
    assert locate("postgresql://vmdeck:s3cret@db/vmdeck").shown == "postgresql://vmdeck:***@db/vmdeck"
    with pytest.raises(InvalidInput) as refused:
        locate("postgresql://vmdeck:s3cret@db:port/vmdeck")
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("setting, says", [
    ("mysql://u@h/db", "scheme 'mysql' is not supported"),
    ("postgresql:/db", "is not a URL vmdeck can use"),
    ("postgresql://u@h:port/db", "malformed database URL"),
    ("postgresql://db.example", "names no database"),
    ("sqlite://", "a SQLite URL names a file"),
    ("sqlite:///:memory:", "a SQLite URL names a file"),
    ("  ", "empty database setting"),
])
def test_settings_vmdeck_cannot_use_are_refused(setting: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as refused:
        locate(setting)
    assert refused.value.field == "db"


def _vmdeck(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmdeck.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize("args, env", [
    (("serve", "--db", "postgresql:/vmdeck"), {}),
    (("serve", "--db", "mysql://root@localhost/vmdeck"), {}),
    (("project", "list", "--db", "postgresql://h:x/vmdeck"), {}),
    (("project", "list"), {"VMDECK_DB": "mysql://root@localhost/vmdeck"}),
])
def test_the_cli_refuses_them_in_one_line_with_exit_code_2(tmp_path: Path, args: tuple[str, ...],
                                                           env: dict[str, str]) -> None:
    done = _vmdeck(tmp_path, *args, VMDECK_DATA_DIR=str(tmp_path / "data"), **env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert list(tmp_path.iterdir()) == []  # no folder named `postgresql:`, no data folder


def test_a_database_planted_in_a_world_writable_folder_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    planted = shared / "vmdeck.sqlite"
    planted.touch()
    os.chown(planted, 65534, 65534)  # nobody's: they could read every password hash put in it
    with pytest.raises(InvalidInput, match="belongs to uid 65534"):
        open_database(planted)
    other = tmp_path / "other"
    other.mkdir()
    other.chmod(0o777)
    os.chown(other, 65534, 65534)
    with pytest.raises(InvalidInput, match="writable by everyone and owned by uid 65534"):
        open_database(other / "vmdeck.sqlite")
    assert not (other / "vmdeck.sqlite").exists()
    # The same folder with a file of our own is fine (the server's own database in /tmp).
    planted.unlink()
    open_database(planted)
    assert planted.stat().st_uid == os.geteuid()

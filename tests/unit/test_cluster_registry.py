"""The host registry: one SQLite table shared by the CLI (sqlite3) and `vmdeck serve` (Alembic)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vmdeck.cluster.registry import LOCAL, HostEntry, Registry
from vmdeck.errors import Conflict, InvalidInput, NotFound
from vmdeck.store.db import HEAD_REVISION, open_database


def test_no_database_means_only_local(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "none.sqlite")
    assert registry.entries() == [LOCAL]
    assert not (tmp_path / "none.sqlite").exists()  # reading creates nothing


def test_add_update_remove(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "db.sqlite")
    registry.add(HostEntry("h2", "qemu+tcp://10.0.0.2/system", vcpu_ratio=2, reserve_mib=1024))
    assert [e.name for e in registry.entries()] == ["local", "h2"]
    assert registry.get("h2").migrate_uri == "tcp://10.0.0.2"
    assert LOCAL.migrate_uri is None
    assert registry.update("h2", draining=True).draining
    assert registry.get("h2") == HostEntry("h2", "qemu+tcp://10.0.0.2/system", 2.0, 1024, True)
    with pytest.raises(Conflict, match="already registered"):
        registry.add(HostEntry("h2", "qemu+tcp://10.0.0.3/system"))
    with pytest.raises(Conflict, match="already registered"):
        registry.add(HostEntry("h3", "qemu+tcp://10.0.0.2/system"))
    registry.remove("h2")
    with pytest.raises(NotFound, match="known: local"):
        registry.get("h2")


@pytest.mark.parametrize("entry, field", [
    (HostEntry("Bad Name", "qemu:///system"), "name"),
    (HostEntry("h", "not a uri"), "uri"),
    (HostEntry("h", "qemu+tcp://h/sys\x00tem"), "uri"),
    (HostEntry("h", "qemu+tcp://h/system\n"), "uri"),
    (HostEntry("h", "qemu+tcp://h/system", vcpu_ratio=0), "vcpu_ratio"),
    (HostEntry("h", "qemu+tcp://h/system", reserve_mib=-1), "reserve_mib"),
])
def test_bad_input_is_refused(tmp_path: Path, entry: HostEntry, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        Registry(tmp_path / "db.sqlite").add(entry)
    assert raised.value.field == field


@pytest.mark.parametrize("cli_first", [True, False])
def test_same_table_whoever_creates_it(tmp_path: Path, cli_first: bool) -> None:
    """The CLI may write the registry before the server ever ran, or after: the migration and the CLI agree."""
    path = tmp_path / "vmdeck.sqlite"
    if cli_first:
        Registry(path).add(HostEntry("h2", "qemu+tcp://10.0.0.2/system"))
        open_database(path)
    else:
        open_database(path)
        Registry(path).add(HostEntry("h2", "qemu+tcp://10.0.0.2/system"))
    assert [e.name for e in Registry(path).entries()] == ["local", "h2"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD_REVISION,)


def _age(path: Path, seconds: float) -> None:
    """Make the database files look last written `seconds` ago (so the registry trusts their state)."""
    import os
    import time

    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists():
            past = time.time() - seconds
            os.utime(file, (past, past))


def test_cached_rows_follow_writes_from_another_process(tmp_path: Path) -> None:
    # `vmdeck serve` reads the registry on every request from a cache; `vmdeck host add|drain` in
    # another process (here: another Registry) must still be seen at the very next read.
    path = tmp_path / "db.sqlite"
    server, cli = Registry(path), Registry(path)
    cli.add(HostEntry("h2", "qemu+tcp://10.0.0.2/system"))
    _age(path, 5)
    assert [e.name for e in server.entries()] == ["local", "h2"]
    assert server._cached is not None  # the settled state was cached ...
    cli.update("h2", draining=True)
    assert server.get("h2").draining  # ... and a write made it stale at once
    _age(path, 5)
    server.entries()
    cli.remove("h2")
    assert [e.name for e in server.entries()] == ["local"]


def test_a_state_written_just_now_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # File times move in ticks: two writes in one tick would look like one. Fresh state is re-read.
    # "Just now" is within the granularity: made an hour here, as a loaded machine may take longer than
    # the real 100 ms from add() to entries().
    monkeypatch.setattr("vmdeck.cluster.registry._MTIME_GRANULARITY_NS", 3600 * 10**9)
    path = tmp_path / "db.sqlite"
    registry = Registry(path)
    registry.add(HostEntry("h2", "qemu+tcp://10.0.0.2/system"))
    registry.entries()
    assert registry._cached is None

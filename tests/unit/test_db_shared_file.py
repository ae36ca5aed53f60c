"""The server and the admin CLI share one SQLite file: the server's commits must survive the CLI's visits.

Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's included.
vmdeck once opened and closed the live database to make it 0600 (at start-up, and for every placement
decision): the server's SQLite lost its shared lock, the next CLI command to close its connection took
itself for the file's last user, checkpointed and deleted the WAL, and every later commit of the server
went to a deleted file. This test is the server (this process) and the CLI (a child process).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from vmdeck.cluster.pending import Claim, PlacementBook
from vmdeck.store.auditlog import Audit
from vmdeck.store.db import open_database

VISIT = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
         "print(c.execute('SELECT count(*) FROM audit').fetchone()[0]); c.close()")


def _count_from_another_process(path: Path) -> int:
    done = subprocess.run([sys.executable, "-c", VISIT, str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_commits_of_a_long_lived_process_survive_other_processes_closing_the_file(tmp_path: Path) -> None:
    path = tmp_path / "web" / "vmdeck.sqlite"
    server = Audit(open_database(path))
    server.record("admin", "session", None, "vm.create", "a", None, 201, "ok")  # the pool keeps its connection
    # What the server does again while it runs: open the database (the admin CLI's stores do it too) and
    # decide placements, each of which once re-opened the file to make it private.
    Audit(open_database(path)).record("admin", "session", None, "vm.create", "b", None, 201, "ok")
    book = PlacementBook(path)
    with book.hold(book.seen(), lambda claims: Claim("local", "vm", 1, 64)):
        pass
    assert _count_from_another_process(path) == 2
    assert path.with_name(path.name + "-wal").exists()  # the visitor was not the last user
    server.record("admin", "session", None, "vm.create", "c", None, 201, "ok")
    assert _count_from_another_process(path) == 3  # the server's commit is in the file everyone reads
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT vm FROM audit ORDER BY id")] == ["a", "b", "c"]


def test_a_new_database_is_private_from_its_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "web" / "vmdeck.sqlite"
    open_database(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700

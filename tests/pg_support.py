"""A real PostgreSQL for the tests: a private cluster from Debian's postgresql-15, started by the test
session itself (initdb + pg_ctl as the postgres user, in a temporary folder, on 127.0.0.1 and a free
port) and stopped at its end. Each test that asks gets a database of its own.

Import the fixtures into a conftest or a test module (`from pg_support import pg_server, pg_url`).
A module that imports `both_backends` runs each of its tests on SQLite and on PostgreSQL: it is the
fixture `backend` ("sqlite" or "postgresql") the store-backed fixtures (tests/api/conftest.py's
`db_setting`) follow.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from serving import free_port

__all__ = ["PgServer", "pg_server", "pg_url", "both_backends", "start_pg", "BIN"]

BIN = Path("/usr/lib/postgresql/15/bin")
_COUNTER = itertools.count()


@dataclass
class PgServer:
    folder: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql (autocommit: CREATE/DROP DATABASE may not run in a transaction)."""
        done = subprocess.run([str(BIN / "psql"), "-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-p", str(self.port),
                               "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-c", statement],
                              capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {done.stderr.strip()}")
        return done.stdout.strip()

    def new_database(self) -> str:
        name = f"vmdeck_{os.getpid()}_{next(_COUNTER)}"
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        # FORCE: a server process a test killed may have left a connection PostgreSQL has not noticed yet.
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _as_postgres(*argv: str) -> subprocess.CompletedProcess[str]:
    # initdb refuses to run as root; the cluster's files belong to the postgres user Debian created.
    command = list(argv) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def start_pg() -> PgServer:
    folder = Path(tempfile.mkdtemp(prefix="vmdeck-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    data = folder / "data"
    done = _as_postgres(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--no-sync")
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr}")
    port = free_port()
    # Durability is not what these tests check: no fsync, so the suite does not wait on the disk.
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off -c max_connections=200"
    done = _as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w",
                        "-t", "120", "start")
    if done.returncode != 0:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {done.stderr}\n{log}")
    return PgServer(folder, port)


def stop_pg(server: PgServer) -> None:
    _as_postgres(str(BIN / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "immediate", "-w", "stop")
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_pg()
    try:
        yield server
    finally:
        stop_pg(server)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test: postgresql://postgres@127.0.0.1:PORT/NAME."""
    url = pg_server.new_database()
    try:
        yield url
    finally:
        from vmdeck.store.db import forget_engine

        forget_engine(url)
        pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"], name="backend")
def both_backends(request: pytest.FixtureRequest) -> str:
    return str(request.param)

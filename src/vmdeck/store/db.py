"""The control plane's database: its ORM models, where it is, and opening it (store layer).

One database holds accounts, sessions, API tokens, projects, quotas and their claims, the host
registry, placement claims and the audit log. It is a SQLite file (the embedded default) or a
PostgreSQL database shared by several `vmdeck serve` (docs/STORE.md), named by a file path,
sqlite:///PATH or postgresql://USER@HOST/DB (locate); anything else is refused (InvalidInput).

The schema is owned by Alembic migrations (vmdeck/store/migrations), applied at opening: an
existing database from an older vmdeck is upgraded in place, without losing a row (on SQLite the
migrations run with foreign keys off: a table Alembic copies would otherwise cascade-delete the
rows that point at it), so the server restarts without signing anyone out.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import stat
import threading
import weakref
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine, event
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from vmdeck.errors import HostError, InvalidInput
from vmdeck.paths import create_private, database_setting

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["Base", "User", "WebSession", "ApiToken", "Project", "Membership", "Reservation", "IsoOwner", "AuditEntry",
           "HostRow", "Placement", "HostUsage", "HostCounted", "Counter", "ConsoleTicket", "TaskRow",
           "Location", "locate", "engine_for", "forget_engine", "open_database", "utcnow"]


def affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (a DML statement's result is a CursorResult)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class WebSession(Base):
    """A browser sign-in. Only the SHA-256 of the cookie value is stored: a leaked database opens no session."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)


class ApiToken(Base):
    """A token for scripts (Authorization: Bearer). Shown once at creation, stored as its SHA-256."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(12))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Scope: one project and a role no higher than the owner's there; NULL project = an admin's host-wide token.
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # NULL: every call the project and role allow; else comma-separated scopes ("metrics"), migration 0011.
    scopes: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Project(Base):
    """A tenant: VMs (by their libvirt metadata), ISOs, members and quotas. A NULL limit is no limit."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    max_instances: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_vcpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_memory_mib: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_disk_gib: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_iso_gib: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_networks: Mapped[int | None] = mapped_column(Integer, nullable=True)  # migration 0014
    max_forwards: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Membership(Base):
    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | operator | manager


class Reservation(Base):
    """Quota held by a create or resize in progress: counted with the VMs libvirt already has."""

    __tablename__ = "reservations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    what: Mapped[str] = mapped_column(String(200))
    instances: Mapped[int] = mapped_column(Integer, default=0)
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mib: Mapped[int] = mapped_column(Integer, default=0)
    disk_gib: Mapped[float] = mapped_column(Float, default=0.0)
    iso_gib: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # The process holding it, and until when (epoch seconds) its lease runs (vmdeck.store.lease).
    owner: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)
    # Set when its create ended with the VM defined: the `quota:<project>` counter at that moment
    # (vmdeck.store.quota: a count that began before still counts it).
    released_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)


class IsoOwner(Base):
    """Which project uploaded an ISO of the library (ISOs without a row were put there by the host's admin)."""

    __tablename__ = "isos"

    name: Mapped[str] = mapped_column(String(160), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuditEntry(Base):
    """One state-changing request: who, when, what, which VM, and how it ended."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64))
    via: Mapped[str] = mapped_column(String(16))  # session | token | cli
    project: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(64))
    vm: Mapped[str | None] = mapped_column(String(128), nullable=True)
    target: Mapped[str | None] = mapped_column(String(300), nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(300))


class HostRow(Base):
    """One host of the registry (vmdeck.cluster.registry): `local` is always there."""

    __tablename__ = "hosts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    uri: Mapped[str | None] = mapped_column(String(1024), nullable=True)  # NULL: qemu:///system
    vcpu_ratio: Mapped[float] = mapped_column(Float, default=4.0)
    reserve_mib: Mapped[int] = mapped_column(Integer, default=512)
    draining: Mapped[bool] = mapped_column(default=False)
    added_at: Mapped[float] = mapped_column(Float, default=0.0)


class Placement(Base):
    """A create's claim on a host's memory and vCPUs, from the placement decision until the create ends
    (vmdeck.cluster.pending)."""

    __tablename__ = "placements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(64))
    vm: Mapped[str] = mapped_column(String(200))
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)
    released_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the `placements` counter then


class HostUsage(Base):
    """A project's use on a host at its last successful count (vmdeck.store.quota)."""

    __tablename__ = "host_usage"

    uri: Mapped[str] = mapped_column(String(1024), primary_key=True)
    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(64))
    instances: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    disk_gib: Mapped[float] = mapped_column(Float)
    vms: Mapped[str] = mapped_column(Text)  # JSON list of names
    counted_at: Mapped[float] = mapped_column(Float)


class HostCounted(Base):
    """When a host was last counted, and which projects had VMs there then."""

    __tablename__ = "hosts_counted"

    uri: Mapped[str] = mapped_column(String(1024), primary_key=True)
    projects: Mapped[str] = mapped_column(Text)  # JSON list
    counted_at: Mapped[float] = mapped_column(Float)


class Counter(Base):
    """A number that only grows, one per kind of claim (`placements`, `quota:<project>`): bumped when a
    claim is released, so a decision knows which releases came after its count began."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class ConsoleTicket(Base):
    """A console ticket (vmdeck.api.tickets): its SHA-256, who may use it, for which console, until when."""

    __tablename__ = "console_tickets"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    vm: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    # A console link's: the credential that asked for it, by reference (vmdeck.store.accounts.by_reference).
    credential: Mapped[str | None] = mapped_column(String(80), nullable=True)


class TaskRow(Base):
    """A long operation and how it went (vmdeck.store.tasks; migration 0013)."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # vm.create, vm.start, vm.snapshot, vm.clone, iso.upload ...
    target: Mapped[str] = mapped_column(String(200))  # the VM, image, ISO or backup it is about
    vm: Mapped[str | None] = mapped_column(String(200), nullable=True)
    project: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    username: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16))  # cli | socket | api | schedule
    state: Mapped[str] = mapped_column(String(16), index=True)  # queued | running | done | failed | cancelled
    done: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    updated: Mapped[float] = mapped_column(Float, index=True)  # epoch seconds of the last change (the event push)
    result: Mapped[str | None] = mapped_column(String(300), nullable=True)  # the outcome, or the error line
    log: Mapped[str] = mapped_column(Text, default="")  # its last lines, newline-separated
    owner: Mapped[str] = mapped_column(String(200), default="")  # the process running it (vmdeck.store.lease)
class PortForward(Base):
    """A host address, protocol and port forwarded to a VM's port (vmdeck.store.forwards, migration 0014)."""

    __tablename__ = "port_forwards"
    __table_args__ = (UniqueConstraint("address", "proto", "host_port", name="uq_port_forwards_host_port"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=True,
                                                   index=True)
    vm: Mapped[str] = mapped_column(String(200), index=True)
    network: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(17))
    address: Mapped[str] = mapped_column(String(45))
    proto: Mapped[str] = mapped_column(String(3))
    host_port: Mapped[int] = mapped_column(Integer)
    guest_ip: Mapped[str] = mapped_column(String(45))
    guest_port: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


# The newest migration's revision. A database already there needs no Alembic at all: importing it and
# reading the migration scripts took a third of a second from every `vmdeck create` (docs/PERFORMANCE.md).
# tests/unit/test_db_head.py checks it against the migrations folder.
HEAD_REVISION = "0015"

_SCHEMES = "a file path, sqlite:///PATH or postgresql://USER@HOST/DATABASE"
_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class Location:
    """Where the database is: its SQLAlchemy URL, and the SQLite file (None for PostgreSQL)."""

    url: str
    path: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.path is not None

    @property
    def shown(self) -> str:
        """For messages and logs: the file, or the URL without its password."""
        if self.path is not None:
            return str(self.path)
        from sqlalchemy.engine import make_url

        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=True)


def locate(value: str | Path | Location | None = None) -> Location:
    """The database a setting names (None: $VMDECK_DB, else <data dir>/web/vmdeck.sqlite).

    A path or sqlite:///PATH is a SQLite file; postgresql://... (or postgres://, postgresql+psycopg://)
    a PostgreSQL database. Anything else is InvalidInput: a setting like `postgresql:/db` or `mysql://`
    once became a folder of that name with a SQLite file in it.
    """
    if isinstance(value, Location):
        return value
    if value is None:
        value = database_setting()
    if isinstance(value, Path):
        return Location(f"sqlite:///{value}", value)
    text = value.strip()
    if not text:
        raise InvalidInput(f"empty database setting: give {_SCHEMES}", field="db")
    if "://" not in text:
        if _URL_LIKE.match(text):
            raise InvalidInput(f"database {text!r} is not a URL vmdeck can use: give {_SCHEMES}", field="db")
        return Location(f"sqlite:///{text}", Path(text))
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme = text.split("://", 1)[0].lower()
    try:
        url = make_url(text)
        url.port  # noqa: B018 (parsed lazily: a port that is not a number fails here)
    except (ArgumentError, ValueError) as error:
        raise InvalidInput(f"malformed database URL {_hidden(text)!r}: {error}", field="db") from None
    if scheme in ("sqlite", "sqlite+pysqlite"):
        if not url.database or url.database == ":memory:" or url.host:
            raise InvalidInput(f"database {text!r}: a SQLite URL names a file, sqlite:///PATH", field="db")
        return Location(f"sqlite:///{url.database}", Path(url.database))
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        if not url.database:
            raise InvalidInput(f"database URL {_hidden(text)!r} names no database: postgresql://USER@HOST/DATABASE",
                               field="db")
        return Location(url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    raise InvalidInput(f"database URL scheme {scheme!r} is not supported: give {_SCHEMES}", field="db")


def _hidden(text: str) -> str:
    """`text` with the password of a user:password@ part replaced (it goes into an error message)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", text)


def _at_head(path: Path) -> bool:
    if not path.exists():
        return False
    import sqlite3

    try:
        conn = sqlite3.connect(path, timeout=60)
        try:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:  # no table yet (a new file), or not a database: Alembic says what is wrong
        return False
    return rows == [(HEAD_REVISION,)]


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("vmdeck.store") / "migrations"))
    config.attributes["engine"] = engine
    return config


def _trusted(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _check_owners(path: Path) -> None:
    """Refuse a database (or its -wal/-shm, or its folder) that another user could have put there for us.

    In a folder everyone may write to (/tmp), anyone can create vmdeck.sqlite before the server does:
    the server would then keep its password hashes in a file that user owns and reads.
    """
    folder = path.parent
    try:
        info = folder.stat()
    except FileNotFoundError:
        return
    if not info.st_mode & stat.S_IWOTH:
        return
    if not _trusted(info.st_uid):
        raise InvalidInput(f"refusing the database in {folder}: the folder is writable by everyone and owned by "
                           f"uid {info.st_uid}, not by this user or root; use a private folder", field="db")
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            owner = file.lstat().st_uid
        except FileNotFoundError:
            continue
        if not _trusted(owner) or file.is_symlink():
            raise InvalidInput(f"refusing the database file {file}: it is in a folder everyone may write to and "
                               f"belongs to uid {owner}, not to this user or root; remove it or use a private "
                               "folder", field="db")


def _private_files(path: Path) -> None:
    """The database holds password hashes: its folder 0700, the file and SQLite's -wal/-shm 0600.

    SQLite gives -wal and -shm the mode of the database file, so creating that one 0600 first
    (before SQLite ever opens it) is what keeps the side files private too.
    """
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_owners(path)
    # Only a folder of our own is closed: a database put in a shared folder (/tmp, a sticky or
    # world-writable one, or one owned by someone else) must not take that folder from its other users.
    info = folder.stat()
    shared = bool(info.st_mode & (stat.S_ISVTX | stat.S_IWOTH)) or info.st_uid != os.geteuid()
    if not shared:
        folder.chmod(0o700)
    create_private(path)  # never open()+close() of a live database: see create_private
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            file.chmod(0o600)


# Weak: an engine lives as long as something uses it (a server's stores, a registry), then its pool closes
# (a test suite opens hundreds of databases in one process).
_ENGINES: weakref.WeakValueDictionary[str, Engine] = weakref.WeakValueDictionary()
_ENGINES_LOCK = threading.Lock()


def forget_engine(where: str | Path | Location) -> None:
    """Close this process's pool for a database (tests drop their databases; a server never needs it)."""
    location = locate(where)
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(location.url, None)
    if engine is not None:
        engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL: readers (every authenticated request) do not wait behind the rare writer.
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL, SQLite's advice for WAL: a commit is not fsynced until the next checkpoint, so a power
    # loss (not a crash of vmdeck) may forget the last few commits, but never corrupts the file.
    # FULL cost each `vmdeck create` ~0.1 s of fsyncs (its quota reservation, release and audit line).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def engine_for(location: Location) -> Engine:
    """The one engine (connection pool) of this process for `location`: every store module shares it."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(location.url)
        if engine is None:
            if location.is_sqlite:
                # timeout: writers queue behind one another (BEGIN IMMEDIATE for claims) instead of failing.
                engine = create_engine(location.url, connect_args={"check_same_thread": False, "timeout": 60})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                # pre_ping: a PostgreSQL restarted under a running server costs one reconnect, not an error.
                engine = create_engine(location.url, pool_pre_ping=True, pool_size=5, max_overflow=15,
                                       connect_args={"connect_timeout": 10})
            _ENGINES[location.url] = engine
        return engine


def _migrate_sqlite(location: Location) -> None:
    from alembic import command

    assert location.path is not None
    # Foreign keys off while migrating: Alembic's batch mode copies a table to change it, and with them on
    # the DROP of the old `users` cascaded to every session and token (a 0001 database lost them all).
    engine = create_engine(location.url, connect_args={"timeout": 60})
    lock = location.path.with_name(location.path.name + ".lock")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        command.upgrade(_alembic_config(engine), "head")
        with engine.connect() as conn:
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:  # never expected: the rows are kept, and the server says what is wrong
            raise HostError(f"the database {location.path} has {len(broken)} rows pointing at missing rows "
                            f"after its upgrade (first: {tuple(broken[0])})")
    finally:
        os.close(fd)
        engine.dispose()


def _migrate_postgresql(engine: Engine) -> None:
    from alembic import command
    from sqlalchemy import text

    with engine.connect() as conn:
        if _pg_at_head(conn):
            return
        # Several servers may start at once on a new database: one migrates, the others wait for it.
        conn.execute(text("SELECT pg_advisory_lock(7468707)"))
        try:
            config = _alembic_config(engine)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(7468707)"))
            conn.commit()


def _pg_at_head(conn: Any) -> bool:
    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    try:
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).fetchall()
    except ProgrammingError:  # a new database: no table yet
        conn.rollback()
        return False
    conn.rollback()
    return [tuple(r) for r in rows] == [(HEAD_REVISION,)]


def open_database(where: str | Path | Location | None = None) -> sessionmaker[Session]:
    """Open (creating if needed) the database and bring its schema to the newest migration."""
    location = locate(where)
    if location.path is not None:
        _private_files(location.path)
        if not _at_head(location.path):
            _migrate_sqlite(location)
        _private_files(location.path)
        engine = engine_for(location)
    else:
        engine = engine_for(location)
        from sqlalchemy.exc import OperationalError

        try:
            _migrate_postgresql(engine)
        except OperationalError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            raise HostError(f"cannot use the database {location.shown}: {reason}") from None
    return sessionmaker(engine, expire_on_commit=False)

"""Accounts, sessions, API tokens, projects, quotas and the audit log in SQLite (store layer).

The schema is owned by Alembic migrations (vmdeck/store/migrations), applied at
start-up: an existing database from an older vmdeck is upgraded in place, so
the server restarts without signing anyone out.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import stat
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, create_engine, event
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from vmdeck.paths import create_private

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["Base", "User", "WebSession", "ApiToken", "Project", "Membership", "Reservation", "IsoOwner", "AuditEntry",
           "open_database", "utcnow"]


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


# The newest migration's revision. A database already there needs no Alembic at all: importing it and
# reading the migration scripts took a third of a second from every `vmdeck create` (docs/PERFORMANCE.md).
# tests/unit/test_db_head.py checks it against the migrations folder.
HEAD_REVISION = "0010"


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


def _private_files(path: Path) -> None:
    """The database holds password hashes: its folder 0700, the file and SQLite's -wal/-shm 0600.

    SQLite gives -wal and -shm the mode of the database file, so creating that one 0600 first
    (before SQLite ever opens it) is what keeps the side files private too.
    """
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
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


def open_database(path: Path) -> sessionmaker[Session]:
    """Open (creating if needed) the SQLite file and bring its schema to the newest migration."""
    _private_files(path)
    # timeout: writers queue behind one another (BEGIN IMMEDIATE for quota reservations) instead of failing.
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 60})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL: readers (every authenticated request) do not wait behind the rare writer.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL, SQLite's advice for WAL: a commit is not fsynced until the next checkpoint, so a power
        # loss (not a crash of vmdeck) may forget the last few commits, but never corrupts the file.
        # FULL cost each `vmdeck create` ~0.1 s of fsyncs (its quota reservation, release and audit line).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # The server and the admin CLI may open a new database at the same moment: one migrates, the other waits.
    if not _at_head(path):
        from alembic import command

        lock = path.with_name(path.name + ".lock")
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            command.upgrade(_alembic_config(engine), "head")
        finally:
            os.close(fd)
    _private_files(path)
    return sessionmaker(engine, expire_on_commit=False)

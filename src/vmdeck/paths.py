"""Where vmdeck keeps its files on this machine (core layer).

Root runs the system-wide instance (like libvirt's qemu:///system); the
environment variables let tests and unprivileged users point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """Images, the vmdeck storage pool, probe caches."""
    return Path(os.environ.get("VMDECK_DATA_DIR", "/var/lib/vmdeck"))


def config_dir() -> Path:
    """User templates (templates/*.yaml) and server settings."""
    default = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "vmdeck"
    return Path(os.environ.get("VMDECK_CONFIG_DIR", default))


def pool_dir() -> Path:
    """Directory backing the `vmdeck` libvirt storage pool (VM disks)."""
    return data_dir() / "pool"


def iso_dir() -> Path:
    """The ISO library: media users upload or build with `vmdeck iso make`."""
    return data_dir() / "isos"


def pool_name() -> str:
    """The libvirt storage pool vmdeck creates volumes in (a test may point at its own small one)."""
    return os.environ.get("VMDECK_POOL", "vmdeck")


def database_setting() -> str:
    """The database of `vmdeck serve` and the CLI: $VMDECK_DB (a file, sqlite:///PATH or postgresql://...),
    else the SQLite file <data dir>/web/vmdeck.sqlite (vmdeck.store.db.locate reads it)."""
    return os.environ.get("VMDECK_DB") or str(data_dir() / "web" / "vmdeck.sqlite")


def database_path() -> Path:
    """The SQLite file of `vmdeck serve` (accounts, tokens) and of the host registry the CLI reads too.

    With a PostgreSQL database ($VMDECK_DB=postgresql://...) there is no file: this is then where the
    default one would be, whose folder still holds the server's local socket (vmdeck.local_socket).
    """
    setting = os.environ.get("VMDECK_DB") or ""
    if setting.startswith("sqlite:///"):
        return Path(setting[len("sqlite:///"):])
    if not setting or "://" in setting:
        return data_dir() / "web" / "vmdeck.sqlite"
    return Path(setting)


def create_private(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists; an existing file is left alone, never opened.

    Never opened, because closing any descriptor of a file drops every POSIX lock this process holds
    on it: SQLite's included. A server whose SQLite lost its shared lock on the database lets another
    process's closing connection take the file as its last user, checkpoint and delete the WAL the
    server still writes to, and every later commit of the server is lost (O_EXCL: no race either).
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


def backup_dir() -> Path:
    """The default backup repository (`vmdeck backup create --repo` names another, e.g. a mounted share)."""
    return Path(os.environ.get("VMDECK_BACKUP_REPO", data_dir() / "backups"))

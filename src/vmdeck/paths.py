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


def database_path() -> Path:
    """The SQLite file of `vmdeck serve` (accounts, tokens) and of the host registry the CLI reads too."""
    return Path(os.environ.get("VMDECK_DB", data_dir() / "web" / "vmdeck.sqlite"))

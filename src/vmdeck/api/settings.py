"""What one `vmdeck serve` instance is configured with (api layer)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vmdeck.paths import database_path
from vmdeck.store.db import Location, locate

__all__ = ["Settings", "default_db_path"]


def default_db_path() -> Path:
    return database_path()


@dataclass
class Settings:
    # libvirt URI of the managed host (None: $VMDECK_URI, then qemu:///system).
    uri: str | None = None
    # SQLite file holding accounts, sessions and API tokens; survives restarts.
    db_path: Path = field(default_factory=default_db_path)
    # A PostgreSQL URL (postgresql://USER@HOST/DB) used instead of db_path: several servers share it.
    db_url: str | None = None
    # The first start creates "admin" with this password, or a random one-time password when None.
    admin_password: str | None = None
    # Seconds a console ticket stays valid (it is also single-use).
    ticket_ttl: float = 30.0
    # Seconds a sign-in session lasts without use.
    session_ttl: float = 7 * 24 * 3600.0
    # Browser origins besides the server's own that may open console and event websockets.
    extra_origins: tuple[str, ...] = ()
    # Seconds between two live CPU/memory samples pushed on the event stream.
    stats_interval: float = 2.0
    # Seconds between two bulk refreshes of the VM inventory (events keep it current in between).
    inventory_interval: float = 5.0
    # Start the libvirt event loop thread (tests of pure endpoints may turn it off).
    events: bool = True
    # Host names (Host header) the server answers to; anything else is refused (DNS rebinding). "*": any.
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    # Unix socket where the vmdeck command on this machine hands off list, start and create
    # (vmdeck.api.local_socket); None: no such socket.
    local_socket: Path | None = None
    # Largest ISO upload in GiB when the project has no ISO quota of its own.
    max_iso_upload_gib: float = 16.0
    # Seconds between two metrics samples (GET /metrics, history, `vmdeck top`); history's finest step is 10 s.
    metrics_interval: float = field(default_factory=lambda: float(os.environ.get("VMDECK_METRICS_INTERVAL", "10")))
    # Seconds between two reads of the slower figures: guest RAM touched (smaps), pools' fill, quota use.
    metrics_detail_interval: float = 60.0
    # Folder of the history files (None: "history" beside the database).
    history_dir: Path | None = None

    def location(self) -> Location:
        """The database this server uses: db_url when given, else the SQLite file db_path."""
        return locate(self.db_url if self.db_url else self.db_path)

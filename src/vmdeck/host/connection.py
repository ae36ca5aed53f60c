"""The connection to one libvirt host (host layer).

`--connect URI` / `VMDECK_URI` choose the host; the default is the local
system instance (qemu:///system), as virt-manager and virsh do for root.
libvirt itself is reached only through vmdeck.host.libvirt_api, which also
turns libvirt's errors into vmdeck's (re-exported here for existing callers).
"""

from __future__ import annotations

import os

from vmdeck.errors import NotFound
from vmdeck.host.libvirt_api import Connection, Domain, libvirt_errors, open_connection, translate

__all__ = ["DEFAULT_URI", "Host", "connect", "translate", "libvirt_errors"]

DEFAULT_URI = "qemu:///system"


class Host:
    """An open connection to one libvirtd, with the host facts vmdeck needs often."""

    def __init__(self, conn: Connection, uri: str) -> None:
        self.conn = conn
        self.uri = uri

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri or self.uri.split("://", 1)[1].startswith("/")

    def hostname(self) -> str:
        return self.conn.hostname()

    def lookup(self, name: str) -> Domain:
        """The VM `name`; NotFound when this host has none."""
        return self.conn.lookup(name)

    def exists(self, name: str) -> bool:
        try:
            self.conn.lookup(name)
        except NotFound:
            return False
        return True

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def connect(uri: str | None = None) -> Host:
    """Open `uri` (default: $VMDECK_URI, then qemu:///system); HostError when libvirtd is not there."""
    target = uri or os.environ.get("VMDECK_URI") or DEFAULT_URI
    return Host(open_connection(target), target)

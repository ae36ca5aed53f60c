"""Where a running `vmdeck serve` answers the CLI on this machine, and what both sides must agree on.

`vmdeck serve` listens, besides its TCP port, on a Unix socket next to its database (mode 0600 in a
private folder, so only the server's user — root — can connect). The `vmdeck` command hands
`list`, `start NAME` and `create NAME` to it when it is there, as LXD's and Incus's clients talk to
their daemon: the server has libvirt, the templates and the database open already, so the command
does not pay ~0.7 s of Python imports to do 50 ms of work (vmdeck.cli.handoff, vmdeck.api.local_socket).

The hand-off is only correct when the CLI would have done the same thing itself: same vmdeck
version, same libvirt URI, same template, data and pool settings. The client sends `context()`
and the server compares it with its own; any difference and the server declines (HTTP 412), and
the command runs in-process as before. This module is imported by both sides and stays tiny.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

__all__ = ["CONTEXT_HEADER", "USER_HEADER", "VIA", "MAX_PATH", "socket_path", "context", "trusted_uid", "peer_uid"]

CONTEXT_HEADER = "x-vmdeck-context"
USER_HEADER = "x-vmdeck-user"
# How the audit log names a command that reached the server through the socket (the direct CLI: "cli").
VIA = "cli-socket"
# sun_path holds 108 bytes with its terminating NUL: a longer path cannot be bound or reached.
MAX_PATH = 107


def socket_path(db_path: Path) -> Path:
    """The socket of the server whose database is `db_path` (vmdeck.sqlite -> vmdeck.sock)."""
    return db_path.with_name(db_path.stem + ".sock")


def context(uri: str | None) -> str:
    """What must be equal on both sides for a hand-off: version, libvirt URI, templates, data, pool."""
    from vmdeck import __version__
    from vmdeck.paths import config_dir, data_dir, pool_name

    parts = (__version__, uri or os.environ.get("VMDECK_URI") or "", str(config_dir()), str(data_dir()), pool_name())
    # Hex of the UTF-8 text: any path fits in an HTTP header that way (latin-1 only, no line breaks).
    return "\0".join(parts).encode().hex()


def trusted_uid(uid: int) -> bool:
    """Whether a socket (or the process behind it) owned by `uid` may be a vmdeck serve this process
    talks to: root's (the server's user), or this process's own user's. Anyone else's was planted by
    another local user in a folder they can write: it would fake answers and swallow requests."""
    return uid in (0, os.geteuid())


def peer_uid(conn: socket.socket) -> int:
    """The user of the process on the other end of a connected Unix socket (Linux SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])

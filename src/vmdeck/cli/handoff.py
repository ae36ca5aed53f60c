"""The CLI's client for a running `vmdeck serve` on this machine: one HTTP request over its Unix socket.

Used by the fast path (vmdeck.cli.fast) for `list`, `start NAME` and `create NAME`. It speaks just
enough HTTP/1.1 for the server's JSON answers (one request per connection, `Connection: close`,
bodies with a Content-Length):
http.client and its email parser cost more to import than the whole exchange takes.

`call()` returns the decoded answer; None when no server takes the command — no socket, a stale
socket (the server is gone), or the server declined because its context differs (HTTP 412, see
vmdeck.local_socket). Then the command runs in-process, exactly as without a server. An error
answer becomes the vmdeck error of its HTTP status, so the exit code is the one the command would
have had in-process. `VMDECK_LOCAL_SOCKET=off` turns the hand-off off.

A socket, or a listener behind it, that belongs to neither root nor this command's user is refused
(one line on stderr says so, and the command runs in-process): in a folder other users can write,
anyone could plant a listener there that fakes `vmdeck list` and swallows `vmdeck create`.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any

from vmdeck import errors
from vmdeck.cli.wire import read_response
from vmdeck.local_socket import CONTEXT_HEADER, MAX_PATH, USER_HEADER, context, peer_uid, socket_path, trusted_uid

__all__ = ["LocalServer", "local_server", "read_response"]

# The errors a server answer can carry, by HTTP status: the exit codes of vmdeck.errors.
_BY_STATUS: dict[int, type[errors.VmdeckError]] = {
    cls.http_status: cls for cls in (errors.InvalidInput, errors.NotFound, errors.Conflict, errors.HostError,
                                     errors.GuestError, errors.TimedOut)}
# Refusing a connection means nobody listens: a socket file left by a server that was killed.
_NOBODY = (errno.ECONNREFUSED, errno.ENOENT)


class LocalServer:
    """The socket of the `vmdeck serve` that shares this command's database."""

    def __init__(self, path: Path, uri: str | None) -> None:
        self.path = path
        self.uri = uri
        self.headers: dict[str, str] = {}  # of the last answer: names in lower case, values as sent

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 300.0) -> Any:
        """The server's JSON answer; None: no server took it (run the command in-process).

        `timeout` bounds the wait for the answer: a server that hangs fails the command (exit 5)
        instead of hanging it; a server that is slow on purpose (`start --wait`) gets a longer one."""
        payload = json.dumps(body).encode() if body is not None else b""
        who = os.environ.get("SUDO_USER") or _user_name()
        head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                f"{CONTEXT_HEADER}: {context(self.uri)}\r\n{USER_HEADER}: {who.encode().hex()}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10.0)  # connecting to a listening local socket does not wait on the server
            try:
                conn.connect(str(self.path))
            except OSError as error:
                if error.errno in _NOBODY:
                    return None
                raise errors.HostError(f"cannot reach vmdeck serve at {self.path}: {error.strerror}") from error
            # The file's owner was checked (local_server); the listener's user is what counts: the file may
            # have been replaced since, in a folder others can write.
            listener = peer_uid(conn)
            if not trusted_uid(listener):
                _refuse(self.path, f"the process listening there runs as {_name_of(listener)}")
                return None
            conn.settimeout(timeout)
            try:
                conn.sendall(head.encode("latin-1") + payload)
                status, headers, answer = read_response(conn)
                self.headers = dict(headers)
            except TimeoutError as error:
                raise errors.HostError(f"vmdeck serve at {self.path} did not answer within {timeout:g} s "
                                       "(VMDECK_LOCAL_SOCKET=off runs the command without it)") from error
        if status == 412:
            return None  # the server runs with another version or settings: do it here
        if status >= 400:
            raise _error(status, answer)
        return json.loads(answer) if answer else None


def local_server(uri: str | None) -> LocalServer | None:
    """The local server this command may hand off to, if its socket exists (one stat, no connect)."""
    if os.environ.get("VMDECK_LOCAL_SOCKET", "").lower() in ("off", "0", "no"):
        return None
    from vmdeck.paths import database_path

    path = socket_path(database_path())
    if len(os.fsencode(path)) > MAX_PATH:
        return None
    try:
        found = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISSOCK(found.st_mode):
        return None
    if not trusted_uid(found.st_uid):
        _refuse(path, f"it belongs to {_name_of(found.st_uid)}")
        return None
    return LocalServer(path, uri)


def _refuse(path: Path, why: str) -> None:
    print(f"vmdeck: not using the vmdeck serve socket {path}: {why}, not root or you; running the command "
          "here (remove that file)", file=sys.stderr)


def _name_of(uid: int) -> str:
    import pwd

    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _error(status: int, answer: bytes) -> errors.VmdeckError:
    try:
        detail = str(json.loads(answer).get("detail") or "")
    except (ValueError, AttributeError):
        detail = answer.decode(errors="replace")[:200]
    cls = _BY_STATUS.get(status, errors.VmdeckError)
    return cls(detail or f"vmdeck serve answered HTTP {status}")

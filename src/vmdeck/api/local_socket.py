"""The server's half of the CLI hand-off: its Unix socket, and who a request on it is (api layer).

`vmdeck serve` listens on a Unix socket beside its database (vmdeck.local_socket) for the `vmdeck`
command on this machine (vmdeck.cli.handoff). The socket's file is 0600 in the database's private
folder: whoever can connect is the server's own user, root, who could run the same command against
libvirt directly. So a request arriving there acts as a host administrator named after the
command's user (the audit log says `cli-socket`), with three limits:

- only the VM routes (/api/vms...): the commands handed off are `list`, `start` and `create`;
- the command's context (version, URI, template, data and pool settings) must be the server's,
  or the answer is 412 and the command runs in-process.

With several hosts registered the server serves the command too: its answers are the same use cases
(vmdeck.usecases) the in-process command runs, and the hosts that did not answer a list come back in
the X-Vmdeck-Unreachable header (an administrator's answer), which the command prints as it would.

Which listener a request came through is known from the ASGI scope's `server` (the address the
connection was accepted on), which a client cannot choose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

from vmdeck.api.context import AppContext
from vmdeck.local_socket import CONTEXT_HEADER, MAX_PATH, USER_HEADER, VIA, context, peer_uid, trusted_uid
from vmdeck.store.accounts import Principal

__all__ = ["LocalSocketMiddleware", "LocalSocketServer", "bind_local_socket", "LOCAL_PRINCIPAL"]

# The key under scope["state"] where this middleware leaves the caller for vmdeck.api.security.
LOCAL_PRINCIPAL = "local_principal"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LocalSocketMiddleware:
    def __init__(self, app: Callable[..., Awaitable[None]], path: Path, ctx: AppContext) -> None:
        self.app = app
        self.address = (str(path), None)  # uvicorn's scope["server"] for a connection on that socket
        self.ctx = ctx
        self.context = context(ctx.settings.uri)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or tuple(scope.get("server") or ()) != self.address:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope["path"], headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        scope.setdefault("state", {})[LOCAL_PRINCIPAL] = Principal(
            user_id=0, username=_user(headers.get(USER_HEADER, "")), is_admin=True, via=VIA)
        await self.app(scope, receive, send)

    def _refusal(self, path: str, headers: dict[str, str]) -> tuple[int, str, str] | None:
        if path != "/api/vms" and not path.startswith("/api/vms/"):
            return 403, "forbidden", "the local socket serves the vmdeck command's VM requests only"
        if headers.get(CONTEXT_HEADER) != self.context:
            return 412, "handoff_declined", "the command's vmdeck version or settings differ from the server's"
        return None


def _user(hex_name: str) -> str:
    """The command's user as it sent it (hex of UTF-8), for the audit log; 'root' when absent or bad."""
    with contextlib.suppress(ValueError):
        name = bytes.fromhex(hex_name).decode()
        if name.isprintable() and 0 < len(name) <= 64:
            return name
    return "root"


async def _answer(send: Send, status: int, kind: str, detail: str) -> None:
    body = json.dumps({"error": kind, "kind": kind, "detail": detail, "field": None}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def bind_local_socket(path: Path) -> tuple[socket.socket | None, str]:
    """A listening socket at `path` (0600), or None and why not. A socket file nobody answers on is
    replaced, and so is one another user's process answers on; one another server answers on is left to it."""
    if len(os.fsencode(path)) > MAX_PATH:
        return None, f"its path is longer than {MAX_PATH} bytes: {path}"
    if path.is_socket():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()  # left by a server that was killed
            else:
                if trusted_uid(peer_uid(probe)):
                    return None, f"another vmdeck serve answers at {path}"
                # Another local user's listener, planted in a folder they can write: not a vmdeck serve.
                # The commands refuse it (vmdeck.cli.handoff); the server takes its place back.
                path.unlink()
    elif path.exists():
        return None, f"{path} exists and is not a socket"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # umask while binding: the file is never reachable with wider permissions, even for an instant.
    old_mask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_mask)
    # Not listening yet: asyncio listens once the app has started. Until then a command's connect is
    # refused and it runs in-process, instead of queueing behind a server that may never come up.
    listener.setblocking(False)
    return listener, ""


class LocalSocketServer(uvicorn.Server):
    """uvicorn's Server that also accepts on the local socket from bind_local_socket (plain HTTP, even
    when the TCP port has TLS), and removes the socket's file when it stops."""

    def __init__(self, config: uvicorn.Config, local: socket.socket | None) -> None:
        super().__init__(config)
        self.local = local
        self.local_path = local.getsockname() if local is not None else None  # shutdown closes the socket

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or self.local is None:
            return
        config = self.config

        def protocol() -> asyncio.Protocol:  # the factory uvicorn builds for its own listeners
            return config.http_protocol_class(config=config, server_state=self.server_state,  # type: ignore[call-arg]
                                              app_state=self.lifespan.state)

        # Appended to uvicorn's listeners: shutdown stops accepting on it and drains it like the port.
        self.servers.append(await asyncio.get_running_loop().create_server(protocol, sock=self.local))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # Here, not after run(): uvicorn ends a SIGTERM'd process by raising the signal again.
        self.remove_socket()

    def remove_socket(self) -> None:
        if self.local is not None:
            self.local.close()
        if self.local_path:
            with contextlib.suppress(OSError):
                os.unlink(self.local_path)
            self.local_path = None

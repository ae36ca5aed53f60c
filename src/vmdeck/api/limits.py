"""Bounds on request bodies: how big, how slow, and no NUL characters in JSON text (api layer).

A JSON body is read whole before any route sees it, so each route gets a cap
(`body_cap`): a sign-in is a few hundred bytes, a VM with its cloud-init documents
a few MiB. A declared Content-Length above the cap is refused (413) before a byte
is read; a body that grows past it while arriving is refused as soon as it does.
The whole body must arrive within BODY_TIMEOUT_S (408): a client trickling one
byte a second holds no worker and no memory for long.

ISO uploads (PUT /api/isos/{name}) and imports (POST /api/import) are streamed to disk by their
route with their own cap (the project's quota; the room left on the host); here they only get an
idle bound: no byte for UPLOAD_IDLE_S ends the upload as a disconnect.

NUL characters: no name, description or document of vmdeck can hold one (libvirt
and XML take C strings), and deep in the stack they raise instead of answering.
A JSON body with "\\u0000" in any string is refused here (422, naming the field).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from vmdeck.api.errors import error_body

__all__ = ["RequestLimits", "body_cap", "BODY_TIMEOUT_S", "UPLOAD_IDLE_S", "DEFAULT_CAP"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KIB, MIB = 1024, 1024 * 1024
DEFAULT_CAP = 1 * MIB
BODY_TIMEOUT_S = 30.0
UPLOAD_IDLE_S = 60.0
# (method, path prefix) -> cap; the first match wins, DEFAULT_CAP otherwise.
_CAPS: tuple[tuple[str, str, int], ...] = (
    ("*", "/api/auth/", 64 * KIB),
    # user_data and network_config: up to 1,000,000 characters each, JSON-escaped.
    ("POST", "/api/vms", 8 * MIB),
    ("PATCH", "/api/vms/", 8 * MIB),
)
_STREAMED = (("PUT", "/api/isos/"), ("POST", "/api/import"))


def body_cap(method: str, path: str) -> int | None:
    """The most bytes a request body may have; None: streamed by its route (which bounds it itself)."""
    if any(method == m and path.startswith(p) for m, p in _STREAMED):
        return None
    for m, prefix, cap in _CAPS:
        if m in ("*", method) and (path == prefix.rstrip("/") or path.startswith(prefix)):
            return cap
    return DEFAULT_CAP


def _nul_field(value: Any, path: str = "") -> str | None:
    """The first field (dotted) whose text holds a NUL character, or None."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            if (found := _nul_field(item, where)) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _nul_field(item, f"{path}.{index}" if path else str(index))) is not None:
                return found
    return None


class _Refused(Exception):
    def __init__(self, status: int, kind: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.field = status, kind, detail, field


class RequestLimits:
    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        cap = body_cap(scope["method"], scope["path"])
        if cap is None:
            await self.app(scope, _idle_bounded(receive), send)
            return
        try:
            declared = _content_length(scope)
            if declared is not None and declared > cap:
                raise _Refused(413, "too_large", f"the request body is {declared} bytes; at most {cap} here")
            body = await _read_body(receive, cap)
            _check_text(scope, body)
        except _Refused as refused:
            await _answer(send, refused)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise _Refused(400, "bad_request", "Content-Length is not a number") from None
    return None


async def _read_body(receive: Receive, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    with anyio.move_on_after(BODY_TIMEOUT_S) as deadline:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused(400, "bad_request", "the client left before sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                raise _Refused(413, "too_large", f"the request body is larger than {cap} bytes, the most here")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    if deadline.cancelled_caught:
        raise _Refused(408, "request_timeout", f"the request body did not arrive within {BODY_TIMEOUT_S:.0f} s")
    return b"".join(chunks)


def _check_text(scope: Scope, body: bytes) -> None:
    # Cheap test first: only a body that spells a NUL escape (or holds a raw one) is parsed here.
    if b"\\u0000" not in body and b"\x00" not in body:
        return
    content_type = next((v for k, v in scope.get("headers", []) if k == b"content-type"), b"")
    if b"json" not in content_type:
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return  # not JSON after all: the route says so (422)
    field = _nul_field(parsed)
    if field is not None:
        raise _Refused(422, "invalid_input", f"{field}: NUL characters are not allowed", field)


def _idle_bounded(receive: Receive) -> Receive:
    async def bounded() -> Message:
        with anyio.move_on_after(UPLOAD_IDLE_S):
            return await receive()
        return {"type": "http.disconnect"}  # nothing for a minute: the upload is over

    return bounded


async def _answer(send: Send, refused: _Refused) -> None:
    body = json.dumps(error_body(refused.kind, refused.detail, refused.field)).encode()
    await send({"type": "http.response.start", "status": refused.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})

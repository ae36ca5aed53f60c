"""Protections every response gets, before any route runs (api layer).

- Allowed host names: a request whose Host header is not one of the configured
  names is refused (400). The Origin checks compare against the request's own
  Host, so without this a DNS-rebinding page (evil.example resolving to 127.0.0.1)
  would count as "same origin". Loopback names are allowed by default;
  `vmdeck serve --allowed-host NAME` adds the names users reach the server by.
- Headers: a Content-Security-Policy without inline script, frame-ancestors
  'none' and X-Frame-Options DENY (no clickjacking), nosniff, no Referer leaks;
  over HTTPS also Strict-Transport-Security (browsers never try plain HTTP again).
- NUL characters in the path or the query (a VM name "a%00b"): no name of vmdeck
  holds one, and libvirt raises on them instead of answering, so such a request
  is refused here (400) before any route sees it. (Other control characters are
  the names' own validators' to refuse, with the field named.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from vmdeck.api.errors import error_body

__all__ = ["LOOPBACK_NAMES", "CSP", "HardeningMiddleware", "host_name"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# connect-src 'self' covers same-origin ws:/wss: in current browsers; noVNC draws cursors from data:/blob: images.
# Styles may be inline (xterm.js and noVNC add <style> and style attributes at run time); scripts may not.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def host_name(host_header: str) -> str:
    """'Example.org:8470' -> 'example.org', '[::1]:8470' -> '::1'."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HardeningMiddleware:
    def __init__(self, app: Callable[..., Awaitable[None]], allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
        if "*" not in self.allowed and host_name(host) not in self.allowed:
            await _refuse(scope, send, f"unknown Host {host[:80]!r}: this server answers to "
                                       f"{', '.join(sorted(self.allowed))} (vmdeck serve --allowed-host)")
            return
        if _has_nul(scope):
            await _refuse(scope, send, "NUL characters in the path or query are not allowed")
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        extra = [*_HEADERS, HSTS] if scope.get("scheme") == "https" else _HEADERS

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _v in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


def _has_nul(scope: Scope) -> bool:
    if "\x00" in scope.get("path", ""):
        return True
    query = scope.get("query_string", b"")
    return b"\x00" in query or b"%00" in query  # "%00" is the only spelling of NUL in a query


async def _refuse(scope: Scope, send: Send, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps(error_body("bad_request", detail)).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *_HEADERS]})
    await send({"type": "http.response.body", "body": body})

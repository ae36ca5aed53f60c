"""Protections every response gets, before any route runs (api layer).

- Allowed host names: a request whose Host header is not one of the configured
  names is refused (400). The Origin checks compare against the request's own
  Host, so without this a DNS-rebinding page (evil.example resolving to 127.0.0.1)
  would count as "same origin". Loopback names are allowed by default;
  `vmdeck serve --allowed-host NAME` adds the names users reach the server by.
- Headers: a Content-Security-Policy without inline script, frame-ancestors
  'none' and X-Frame-Options DENY (no clickjacking), nosniff, no Referer leaks.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _v in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in _HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


async def _refuse(scope: Scope, send: Send, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": "bad_request", "detail": detail, "field": None}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *_HEADERS]})
    await send({"type": "http.response.body", "body": body})

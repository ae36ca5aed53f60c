"""Who is calling, and may they: one ASGI middleware in front of every route (api layer).

Every request is resolved to a Principal from `Authorization: Bearer <token>`
or the session cookie. Under /api/ an unauthenticated request gets 401 and
nothing else (before any body parsing or routing), and a state-changing request
made with the cookie must carry the session's CSRF token in X-CSRF-Token and,
when the browser names one, the server's own Origin. API-token requests need no
CSRF token: browsers never attach them by themselves.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from fastapi import Request

from vmdeck.api.errors import Forbidden, Unauthorized, error_body
from vmdeck.api.local_socket import LOCAL_PRINCIPAL
from vmdeck.store.accounts import Accounts, Principal

__all__ = ["SESSION_COOKIE", "CSRF_HEADER", "AuthMiddleware", "current_principal", "origin_allowed", "own_origin"]

SESSION_COOKIE = "vmdeck_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Reachable without signing in: the sign-in call itself. Pages redirect to /login on their own.
PUBLIC_API = {"/api/auth/login"}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookie(headers: dict[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def own_origin(headers: dict[str, str], scope: Scope) -> str:
    scheme = scope.get("scheme", "http")
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{scheme}://{headers.get('host', '')}"


def origin_allowed(headers: dict[str, str], scope: Scope, extra: tuple[str, ...]) -> bool:
    """Browsers always send Origin on websockets and cross-site writes; it must be ours (or configured)."""
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser: nothing to protect against, the caller still has to authenticate
    return origin == own_origin(headers, scope) or origin in extra


class AuthMiddleware:
    def __init__(self, app: Callable[..., Awaitable[None]], accounts: Accounts, extra_origins: tuple[str, ...]) -> None:
        self.app = app
        self.accounts = accounts
        self.extra_origins = extra_origins

    async def _resolve(self, headers: dict[str, str]) -> Principal | None:
        auth = headers.get("authorization", "")
        # Known credentials are answered from memory; only a miss (a database read) takes a worker thread,
        # so 20 clients do not queue for threads just to be recognised.
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
            return self.accounts.known_token(token) or await anyio.to_thread.run_sync(self.accounts.from_token, token)
        cookie = _cookie(headers, SESSION_COOKIE)
        if cookie:
            return self.accounts.known_session(cookie) or await anyio.to_thread.run_sync(
                self.accounts.from_session, cookie)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        state = scope.setdefault("state", {})
        # The local socket's caller (vmdeck.api.local_socket) needs no credentials: the socket's owner.
        principal = state.get(LOCAL_PRINCIPAL) or await self._resolve(headers)
        state["principal"] = principal
        path = scope["path"]
        if scope["type"] == "http" and path.startswith("/api/"):
            error = self._check(scope, headers, principal, path)
            auth = headers.get("authorization", "")
            if isinstance(error, Unauthorized) and auth[:7].lower() == "bearer ":
                # A token this server issued and no longer takes: say why (expired when, revoked).
                why = await anyio.to_thread.run_sync(self.accounts.token_refusal, auth[7:].strip())
                if why is not None:
                    error = Unauthorized(why)
            if error is not None:
                await _send_error(send, error)
                return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope, headers: dict[str, str], principal: Principal | None,
               path: str) -> Unauthorized | Forbidden | None:
        unsafe = scope["method"] not in SAFE_METHODS
        if path in PUBLIC_API:
            if unsafe and not origin_allowed(headers, scope, self.extra_origins):
                return Forbidden("cross-site request refused (Origin does not match this server)")
            return None
        if principal is None:
            return Unauthorized("sign in or send an API token (Authorization: Bearer ...)")
        if unsafe and principal.via == "session":
            if not origin_allowed(headers, scope, self.extra_origins):
                return Forbidden("cross-site request refused (Origin does not match this server)")
            sent = headers.get(CSRF_HEADER, "")
            if not sent or not secrets.compare_digest(sent, principal.csrf_token or ""):
                err = Forbidden("missing or wrong CSRF token (send the X-CSRF-Token header)")
                err.kind = "csrf"
                return err
        return None


async def _send_error(send: Send, error: Unauthorized | Forbidden) -> None:
    body = json.dumps(error_body(error.kind, error.message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if isinstance(error, Unauthorized):
        headers.append((b"www-authenticate", b'Bearer realm="vmdeck"'))
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def current_principal(request: Request) -> Principal:
    """Dependency: the caller (the middleware already refused anonymous /api/ calls)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthorized("sign in or send an API token (Authorization: Bearer ...)")
    return principal

"""Open websockets end when their caller loses access (api layer).

A websocket is authenticated once, at its handshake; the event stream and the
consoles then stay open for hours. Each of them is held here with the credential
it was opened with and a rule saying what access it needs. It is checked again
(the credential resolved afresh from the database):

- at once when this server changes accounts: a token revoked, a sign-out, a
  password change, a membership changed (vmdeck.store.accounts calls its
  listeners on every such change);
- every RECHECK_S seconds anyway, for the changes made elsewhere: another
  `vmdeck serve` sharing the database, or root's `vmdeck user disable` and
  `vmdeck user role` on the host.

A socket whose caller no longer passes is closed with 1008 ("access revoked").
Sockets of the local socket's caller (root on the host) have no credential and
are never closed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from starlette.websockets import WebSocket

from vmdeck.api.local_socket import LOCAL_PRINCIPAL
from vmdeck.store.accounts import Accounts, Principal
from vmdeck.store.tenancy import role_rank

__all__ = ["RECHECK_S", "SocketGuard", "Watch", "guard_of", "no_narrower"]

RECHECK_S = 5.0
CLOSE_CODE = 1008

Allowed = Callable[[Principal], bool]


@dataclass(eq=False)
class _Held:
    credential: tuple[str, str]  # ("token" | "session", secret), or ("reference", vmdeck.store.accounts' reference)
    allowed: Allowed
    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class SocketGuard:
    def __init__(self, accounts: Accounts, interval: float = RECHECK_S) -> None:
        self.accounts = accounts
        self.interval = interval
        self._held: set[_Held] = set()
        self._lock = threading.Lock()
        accounts.add_listener(self._changed)

    @property
    def open_count(self) -> int:
        with self._lock:
            return len(self._held)

    def _changed(self) -> None:
        # Called from any thread (the request that changed something): wake every held socket's watcher.
        with self._lock:
            held = list(self._held)
        for entry in held:
            with contextlib.suppress(RuntimeError):  # its loop already closed: the socket is gone
                entry.loop.call_soon_threadsafe(entry.wake.set)

    def _still_allowed(self, entry: _Held) -> bool:
        kind, secret = entry.credential
        if kind == "reference":  # a console opened from a link: the credential that asked for the link
            principal = self.accounts.by_reference(secret)
        else:
            principal = (self.accounts.from_token(secret, fresh=True) if kind == "token"
                         else self.accounts.from_session(secret, fresh=True))
        return principal is not None and entry.allowed(principal)

    async def watch(self, credential: tuple[str, str], allowed: Allowed) -> None:
        """Return when the credential no longer grants `allowed` (the caller then closes its socket)."""
        entry = _Held(credential, allowed, asyncio.get_running_loop())
        with self._lock:
            self._held.add(entry)
        try:
            while True:
                with anyio.move_on_after(self.interval):
                    await entry.wake.wait()
                entry.wake.clear()
                if not await anyio.to_thread.run_sync(self._still_allowed, entry):
                    return
        finally:
            with self._lock:
                self._held.discard(entry)


def guard_of(websocket: WebSocket) -> SocketGuard:
    """The app's guard, made on first use (one per app, on its state)."""
    state = websocket.app.state
    guard: SocketGuard | None = getattr(state, "socket_guard", None)
    if guard is None:
        guard = SocketGuard(state.ctx.accounts)
        state.socket_guard = guard
    return guard


def _credential(websocket: WebSocket) -> tuple[str, str] | None:
    """What the socket was opened with: its bearer token or session cookie (None: the local socket's root)."""
    if websocket.scope.get("state", {}).get(LOCAL_PRINCIPAL) is not None:
        return None
    from vmdeck.api.security import SESSION_COOKIE

    auth = websocket.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return "token", auth[7:].strip()
    cookie = websocket.cookies.get(SESSION_COOKIE)
    return ("session", cookie) if cookie else None


def no_narrower(before: Principal) -> Allowed:
    """The caller still has every role it had (the event stream filters with the roles it opened with)."""
    def allowed(now: Principal) -> bool:
        if before.admin and not now.admin:
            return False
        return all(role_rank(now.role_in(p)) >= role_rank(before.role_in(p)) for p in before.projects())

    return allowed


class Watch:
    """One socket's watch, run as one more pump beside the socket's own: it returns (and sets `revoked`)
    when the caller lost access, so the pumps stop and the handler closes with `close_code`."""

    def __init__(self, websocket: WebSocket, allowed: Allowed, reference: str | None = None) -> None:
        self.websocket = websocket
        self.allowed = allowed
        self.revoked = False
        # A console opened from a link has no credential of its own: the one that asked for the link.
        self.reference = reference

    async def __call__(self) -> None:
        credential = ("reference", self.reference) if self.reference else _credential(self.websocket)
        if credential is None:
            await anyio.sleep_forever()  # root on the local socket: nothing to revoke
        else:
            await guard_of(self.websocket).watch(credential, self.allowed)
        self.revoked = True

    @property
    def close_code(self) -> int:
        return CLOSE_CODE if self.revoked else 1000

    @property
    def close_reason(self) -> str:
        return "access revoked" if self.revoked else ""

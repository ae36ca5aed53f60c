"""Host paths are the administrator's business: a tenant's API answers name files, not where they are (api layer).

VM details carry disk sources, the serial log, owned volumes and the display's socket; the image
library its files; errors from the core name the file they could not use. For a caller who is not a
host administrator, every JSON answer under /api/ is rewritten on its way out: a host path becomes
its last component ("/var/lib/vmdeck/pool/web-vda.qcow2" -> "web-vda.qcow2"), whether it is a whole
value or inside a message. One place, so a route added later cannot forget it. The web UI already
shows files by their last component. An administrator gets the answers unchanged.

Only paths outside the web app's own URL space are touched: "/api/vms/web/console/vnc?ticket=..."
in a console ticket, or a page link such as "/vms/web", stay as they are. Answers that come from
inside the guest (`exec`'s output, the agent's guest info with its mount points) are the tenant's
own and pass unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["HostPathsMiddleware", "hide_host_paths"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# An absolute path of two or more components that does not follow a word, a dot, a colon or a slash
# (so neither "http://host/x" nor "qemu:///system" nor "a/b/c" match). Group 1: its first component.
_SEGMENT = r"[^\s/'\"`,;:()<>\[\]{}]+"
_PATH = re.compile(rf"(?<![\w/.:~-])/({_SEGMENT})(?:/{_SEGMENT})*/({_SEGMENT})/?")
# Routes whose answers are the guest's own words: its paths are not the host's.
_FROM_THE_GUEST = re.compile(r"/api/vms/[^/]+/(exec|guest)")


def hide_host_paths(text: str, own_prefixes: frozenset[str]) -> str:
    """`text` with each host path replaced by its last component; paths whose first component is one of
    the app's own (`own_prefixes`: "api", "static", "vms", ...) are URLs of this server and stay."""
    def last(match: re.Match[str]) -> str:
        return match.group(0) if match.group(1) in own_prefixes else match.group(2)

    return _PATH.sub(last, text) if "/" in text else text


def _walk(value: Any, own: frozenset[str]) -> Any:
    if isinstance(value, str):
        return hide_host_paths(value, own)
    if isinstance(value, list):
        return [_walk(v, own) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, own) for k, v in value.items()}
    return value


class HostPathsMiddleware:
    """Rewrites the JSON answers of /api/ for callers who are not host administrators (see the module)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self._own: frozenset[str] | None = None

    def _own_prefixes(self, scope: Scope) -> frozenset[str]:
        """The first components of the app's own routes ("api", "static", "vms", "login", ...)."""
        if self._own is None:
            paths = [str(getattr(route, "path", "")) for route in getattr(scope.get("app"), "routes", [])]
            self._own = frozenset({"api", "static"} | {p.split("/")[1] for p in paths
                                                      if p.startswith("/") and p[1:2] not in ("", "{")})
        return self._own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or not scope["path"].startswith("/api/")
                or _FROM_THE_GUEST.fullmatch(scope["path"])):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        start: Message | None = None
        body = bytearray()

        async def rewrite(message: Message) -> None:
            nonlocal start
            principal = state.get("principal")
            if principal is not None and principal.admin:  # known once the app runs: before its answer starts
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if not headers.get(b"content-type", b"").startswith(b"application/json"):
                    await send(message)
                    start = {}  # not JSON: passed through as it comes
                    return
                start = message
                return
            if message["type"] != "http.response.body" or start == {}:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            assert start is not None
            try:
                rewritten = json.dumps(_walk(json.loads(bytes(body)), self._own_prefixes(scope))).encode()
            except ValueError:
                rewritten = bytes(body)
            kept = [(k, v) for k, v in start.get("headers") or [] if k.lower() != b"content-length"]
            await send({**start, "headers": [*kept, (b"content-length", str(len(rewritten)).encode())]})
            await send({"type": "http.response.body", "body": rewritten})

        await self.app(scope, receive, rewrite)

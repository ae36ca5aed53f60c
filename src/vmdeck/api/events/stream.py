"""The websocket route /api/events: the stream as one browser receives it (api layer).

A signed-in caller from our Origin gets "hello", then every message of the hub it may see
(vmdeck.api.events.visibility), from its own bounded queue (vmdeck.api.events.fanout). The
stream ends when the browser leaves or when the caller's roles narrow (vmdeck.api.revocation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from vmdeck.api.context import AppContext
from vmdeck.api.events.visibility import for_principal
from vmdeck.api.revocation import Watch, no_narrower
from vmdeck.api.security import origin_allowed
from vmdeck.store.accounts import Principal

__all__ = ["router"]

router = APIRouter()


@router.websocket("/api/events")
async def event_stream(websocket: WebSocket) -> None:
    """State changes as JSON messages: {"type": "state", "vm", "state", "allowed_actions", "event"},
    "inventory", "device", "stats"."""
    principal: Principal | None = websocket.scope.get("state", {}).get("principal")
    ctx: AppContext = websocket.app.state.ctx
    headers = {k.lower(): v for k, v in websocket.headers.items()}
    if principal is None or not origin_allowed(headers, websocket.scope, ctx.settings.extra_origins):
        await websocket.close(code=1008)
        return
    hub = ctx.events
    if hub is None:
        await websocket.close(code=1011, reason="event stream not running")
        return
    queue = hub.subscribe()
    await websocket.accept()
    # The stream shows what the caller's roles allowed when it opened: it ends when they narrow.
    watch = Watch(websocket, no_narrower(principal))
    try:
        await websocket.send_json({"type": "hello", "user": principal.username})

        async def forward() -> None:
            while True:
                message = for_principal(principal, await queue.get())
                if message is not None:
                    await websocket.send_json(message)

        async def drain() -> None:
            # Browsers send nothing; reading notices when they leave.
            while True:
                await websocket.receive_text()

        async with anyio.create_task_group() as tasks:
            async def first(pump: Callable[[], Awaitable[None]]) -> None:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    await pump()
                tasks.cancel_scope.cancel()

            tasks.start_soon(first, forward)
            tasks.start_soon(first, drain)
            tasks.start_soon(first, watch)
        if watch.revoked:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close(code=watch.close_code, reason=watch.close_reason)
    finally:
        hub.unsubscribe(queue)

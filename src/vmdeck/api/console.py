"""Console tickets and the websocket proxy to a VM's screen (VNC) and serial port (api layer).

The browser never learns a host or port: it asks for a ticket (POST
/api/vms/{name}/console/ticket), then opens /api/vms/{name}/console/{kind}?ticket=...
The proxy redeems the ticket (single use, this user, this VM, not expired),
checks the Origin, and only then looks the target up in the VM's live XML:
QEMU's VNC Unix socket (vmdeck's VMs; only root and QEMU can open it), a VNC
websocket or plain VNC port on loopback (VMs whose template asks so), or the serial
console through libvirt's virDomainOpenConsole stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable

import anyio
import websockets
from fastapi import APIRouter, Depends, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from starlette.websockets import WebSocketState
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from vmdeck.api.context import AppContext, request_host, vm_host_of
from vmdeck.api.errors import Forbidden
from vmdeck.api.policy import POLICY, may
from vmdeck.api.revocation import Watch
from vmdeck.api.security import current_principal, origin_allowed
from vmdeck.api.tickets import KINDS
from vmdeck.console.display import display_info
from vmdeck.console.serial import SerialStream
from vmdeck.errors import HostError, InvalidInput, StateError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.store.accounts import Principal
from vmdeck.vm.state import current_state

__all__ = ["router", "vnc_target", "SerialBuffer", "admit", "bridge_stream", "watch_rights", "serve_vnc"]

router = APIRouter(tags=["console"])
log = logging.getLogger("vmdeck.api.console")
_CHUNK = 1 << 16
# Serial output waiting for one browser, at most (see SerialBuffer): minutes of a busy console.
SERIAL_LIMIT = 1 << 20


class TicketRequest(BaseModel):
    kind: str = "vnc"


class TicketReply(BaseModel):
    ticket: str
    kind: str
    vm: str
    expires_in: float
    path: str


@router.post("/api/vms/{name}/console/ticket", response_model=TicketReply)
def console_ticket(name: str, body: TicketRequest, request: Request,
                   principal: Principal = Depends(current_principal),
                   host: Host = Depends(request_host)) -> TicketReply:
    """A single-use ticket for the VM's console websocket, valid for a few seconds."""
    if body.kind not in KINDS:
        raise InvalidInput(f"kind: one of {', '.join(KINDS)}", field="kind")
    dom = host.lookup(name)  # NotFound for a VM that does not exist: no ticket for nothing
    state = current_state(dom)
    if not state.has_console:
        raise StateError(name, state, "running", "open the console of")
    ctx: AppContext = request.app.state.ctx
    ticket = ctx.tickets.issue(principal.user_id, name, body.kind)
    # "ssh" opens the SSH tunnel (vmdeck.api.ssh_tunnel), the others a console of this module.
    where = "ssh" if body.kind == "ssh" else f"console/{body.kind}"
    return TicketReply(ticket=ticket.value, kind=body.kind, vm=name, expires_in=ctx.tickets.ttl,
                       path=f"/api/vms/{name}/{where}?ticket={ticket.value}")


def vnc_target(host: Host, name: str) -> tuple[str, str, int]:
    """("unix", socket path, 0) or ("ws"|"tcp", address, port) of the running VM's VNC server, from
    vmdeck.console.display. vmdeck's VMs have the socket: only root (this server) and QEMU can open it."""
    if not host.is_local:
        raise HostError("the console proxy reaches VNC on this machine: it needs a local libvirt host")
    info = display_info(host.lookup(name))
    if info.type != "vnc":
        raise InvalidInput(f"VM {name!r} shows a {info.type} display; the browser console speaks VNC only")
    if info.socket is not None:
        return "unix", info.socket, 0
    # A display listening on every address is still reached through loopback from here.
    address = "127.0.0.1" if info.listen in ("0.0.0.0", "::", "") else info.listen
    if info.websocket is not None:
        return "ws", address, info.websocket
    return "tcp", address, info.port or 0


async def _admit(websocket: WebSocket, name: str, kind: str) -> bool:
    """Ticket (single use, this user, this VM), then Origin. Refused sockets close before the handshake.

    The ticket is spent first, so even an attempt refused for its Origin leaves nothing to retry with.
    """
    ctx: AppContext = websocket.app.state.ctx
    headers = {k.lower(): v for k, v in websocket.headers.items()}
    principal: Principal | None = websocket.scope.get("state", {}).get("principal")
    try:
        ctx.tickets.redeem(websocket.query_params.get("ticket"), principal.user_id if principal else None,
                           name, kind)
        if not origin_allowed(headers, websocket.scope, ctx.settings.extra_origins):
            raise Forbidden("console websocket from a foreign Origin")
    except Forbidden as refused:
        # Closing before accept makes the server answer the handshake with 403.
        await websocket.close(code=1008, reason=refused.message[:120])
        return False
    return True


def _subprotocol(websocket: WebSocket) -> str | None:
    offered = websocket.scope.get("subprotocols") or []
    return "binary" if "binary" in offered else None


@router.websocket("/api/vms/{name}/console/vnc")
async def vnc_proxy(websocket: WebSocket, name: str) -> None:
    """The VM's screen: RFB between the browser (noVNC) and QEMU's VNC server.

    A display that is not there (the VM stopped, or its QEMU is being restarted by a snapshot
    revert while noVNC reconnects) is an everyday answer, not a server fault: the browser gets a
    close with 1011 and the reason, the log one line, and no traceback.
    """
    if not await _admit(websocket, name, "vnc"):
        return
    await serve_vnc(websocket, name, _watch(websocket))


async def serve_vnc(websocket: WebSocket, name: str, watch: Watch) -> None:
    """An admitted websocket to the VM's screen until either end leaves or `watch` says access is gone
    (the ticket route's and a console link's, vmdeck.api.console_link)."""
    ctx: AppContext = websocket.app.state.ctx
    try:
        kind, address, port = await anyio.to_thread.run_sync(lambda: vnc_target(vm_host_of(ctx, name), name))
    except VmdeckError as error:
        await _not_opened(websocket, "console", name, error.message, _subprotocol(websocket))
        return
    await websocket.accept(subprotocol=_subprotocol(websocket))
    try:
        if kind == "ws":
            # QEMU's websocket server speaks the "binary" subprotocol, as noVNC does.
            upstream = await websockets.connect(f"ws://{address}:{port}", subprotocols=[Subprotocol("binary")],
                                                compression=None, max_size=None, open_timeout=5, ping_interval=None)
        else:  # the socket needs root (or QEMU's user): a server run as anyone else is told so here
            streams = await (asyncio.open_unix_connection(address) if kind == "unix"
                             else asyncio.open_connection(address, port))
    except (OSError, TimeoutError, websockets.InvalidHandshake) as error:
        why = getattr(error, "strerror", None) or str(error) or type(error).__name__
        await _not_opened(websocket, "console", name, f"cannot reach the VM's VNC server: {why}",
                          _subprotocol(websocket))
        return
    if kind == "ws":
        await _bridge_websocket(websocket, upstream, watch)
    else:
        await _bridge_stream(websocket, *streams, watch)


async def _not_opened(websocket: WebSocket, what: str, name: str, reason: str,
                      subprotocol: str | None = None) -> None:
    """The caller was admitted but the VM's end is not there: the browser is told why in a close
    frame (1011, after the handshake, so noVNC and the terminal see the reason rather than a refused
    upgrade), the server's log gets one line (a warning: it shows in `vmdeck serve`'s output)."""
    log.warning("%s of %s not opened: %s", what, name, reason)
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        if websocket.client_state == WebSocketState.CONNECTING:
            await websocket.accept(subprotocol=subprotocol)
        await websocket.close(code=1011, reason=reason[:120])


async def _client_bytes(websocket: WebSocket) -> bytes | None:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    return message.get("bytes") or (message.get("text") or "").encode()


def _watch(websocket: WebSocket) -> Watch:
    """The console stays open while its caller may still open it (vmdeck.api.revocation)."""
    grant = getattr(websocket.state, "grant", None)
    project = grant.project if grant is not None else None
    return Watch(websocket, lambda now: may(now, POLICY["vm.console"].need, project))


async def _bridge_websocket(websocket: WebSocket, upstream: ClientConnection, watch: Watch) -> None:
    async with upstream:
        async def up() -> None:
            while (data := await _client_bytes(websocket)) is not None:
                await upstream.send(data)

        async def down() -> None:
            async for data in upstream:
                await websocket.send_bytes(data if isinstance(data, bytes) else data.encode())

        await _first_of(up, down, watch)
    await _close_quietly(websocket, watch)


async def _bridge_stream(websocket: WebSocket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         watch: Watch) -> None:
    """Raw RFB both ways between the browser's websocket and QEMU's VNC (its Unix socket, or TCP)."""

    async def up() -> None:
        while (data := await _client_bytes(websocket)) is not None:
            writer.write(data)
            await writer.drain()

    async def down() -> None:
        while data := await reader.read(_CHUNK):
            await websocket.send_bytes(data)

    try:
        await _first_of(up, down, watch)
    finally:
        writer.close()
        await _close_quietly(websocket, watch)


async def _close_quietly(websocket: WebSocket, watch: Watch | None = None) -> None:
    # The browser may already be gone (tab closed, page left): nothing left to tell it.
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        if watch is not None and watch.revoked:
            await websocket.close(code=watch.close_code, reason=watch.close_reason)
        else:
            await websocket.close()


async def _first_of(*pumps: Callable[[], Awaitable[None]]) -> None:
    """Run the two directions; when either ends (a side closed), stop the other."""
    async with anyio.create_task_group() as tasks:
        async def run(pump: Callable[[], Awaitable[None]]) -> None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError,
                                     websockets.ConnectionClosed):
                await pump()
            tasks.cancel_scope.cancel()

        for pump in pumps:
            tasks.start_soon(run, pump)


class SerialBuffer:
    """The serial console's output on its way to one browser, bounded (SERIAL_LIMIT bytes).

    Output arrives on libvirt's event thread faster than a browser that stopped reading takes it
    (a guest printing a log in a loop), and the websocket's sends wait for that browser. Bytes of a
    terminal cannot be dropped without garbling it, and the guest cannot be paused for one tab, so a
    browser SERIAL_LIMIT bytes behind is let go: the buffer ends (`overflowed`), the proxy closes the
    websocket with 1013 ("try again later") and the page may open the console anew. The guest's
    serial line is not lost by it: the next reader sees what comes next.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = SERIAL_LIMIT) -> None:
        self.loop = loop
        self.limit = limit
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._lock = threading.Lock()
        self._pending = 0  # bytes pushed and not yet taken
        self._ended = False
        self.overflowed = False

    @property
    def pending(self) -> int:
        return self._pending

    def push(self, data: bytes | None) -> None:
        """From any thread: a chunk of output, or None at the end of the console."""
        with self._lock:
            if self._ended:
                return
            if data is not None and self._pending + len(data) > self.limit:
                self.overflowed, data = True, None
            if data is None:
                self._ended = True
            else:
                self._pending += len(data)
        with contextlib.suppress(RuntimeError):  # the server's loop is closing
            self.loop.call_soon_threadsafe(self._chunks.put_nowait, data)

    async def get(self) -> bytes | None:
        data = await self._chunks.get()
        if data is not None:
            with self._lock:
                self._pending -= len(data)
        return data


class _SerialQueue:
    """The VM's serial console (vmdeck.console.serial.SerialStream) feeding a SerialBuffer."""

    def __init__(self, host: Host, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.buffer = SerialBuffer(loop)
        # FORCE: a tab left open elsewhere must not lock the user out of their own console.
        self.stream = SerialStream(host.conn, name, self.buffer.push, force=True)
        self.send = self.stream.send
        self.close = self.stream.close


@router.websocket("/api/vms/{name}/console/serial")
async def serial_proxy(websocket: WebSocket, name: str) -> None:
    if not await _admit(websocket, name, "serial"):
        return
    ctx: AppContext = websocket.app.state.ctx
    loop = asyncio.get_running_loop()
    try:
        serial = await anyio.to_thread.run_sync(lambda: _SerialQueue(vm_host_of(ctx, name), name, loop))
    except VmdeckError as error:
        await _not_opened(websocket, "serial console", name, error.message)
        return
    await websocket.accept()
    watch = _watch(websocket)

    async def up() -> None:
        while (data := await _client_bytes(websocket)) is not None:
            await anyio.to_thread.run_sync(serial.send, data)

    async def down() -> None:
        while (data := await serial.buffer.get()) is not None:
            await websocket.send_bytes(data)

    try:
        await _first_of(up, down, watch)
    finally:
        await anyio.to_thread.run_sync(serial.close)
        if serial.buffer.overflowed:
            log.warning("serial console of %s: the browser fell %d bytes behind, let go", name, serial.buffer.limit)
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close(code=1013, reason="console output not read: open it again")
        else:
            await _close_quietly(websocket, watch)


# Shared with the SSH tunnel (vmdeck.api.ssh_tunnel): the same admission, rights watch and byte pump.
admit = _admit
watch_rights = _watch
bridge_stream = _bridge_stream

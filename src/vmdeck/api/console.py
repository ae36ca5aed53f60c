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
from typing import Any

import anyio
import websockets
from fastapi import APIRouter, Depends, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
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

__all__ = ["router", "vnc_target", "admit", "bridge_stream", "watch_rights"]

router = APIRouter(tags=["console"])
_CHUNK = 1 << 16


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
    if state not in ("running", "paused", "blocked"):
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
    if not await _admit(websocket, name, "vnc"):
        return
    ctx: AppContext = websocket.app.state.ctx
    try:
        kind, address, port = await anyio.to_thread.run_sync(lambda: vnc_target(vm_host_of(ctx, name), name))
    except VmdeckError as error:
        await websocket.close(code=1011, reason=error.message[:120])
        return
    await websocket.accept(subprotocol=_subprotocol(websocket))
    watch = _watch(websocket)
    if kind == "ws":
        await _bridge_websocket(websocket, f"ws://{address}:{port}", watch)
    else:
        try:  # the socket needs root (or QEMU's user): a server run as anyone else is told so here
            streams = await (asyncio.open_unix_connection(address) if kind == "unix"
                             else asyncio.open_connection(address, port))
        except OSError as error:
            await websocket.close(code=1011, reason=f"cannot reach the VM's VNC server: {error.strerror}"[:120])
            return
        await _bridge_stream(websocket, *streams, watch)


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


async def _bridge_websocket(websocket: WebSocket, url: str, watch: Watch) -> None:
    # QEMU's websocket server speaks the "binary" subprotocol, as noVNC does.
    async with websockets.connect(url, subprotocols=[Subprotocol("binary")], compression=None, max_size=None,
                                  open_timeout=5, ping_interval=None) as upstream:
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


async def _first_of(*pumps: Any) -> None:
    """Run the two directions; when either ends (a side closed), stop the other."""
    async with anyio.create_task_group() as tasks:
        async def run(pump: Any) -> None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError,
                                     websockets.ConnectionClosed):
                await pump()
            tasks.cancel_scope.cancel()

        for pump in pumps:
            tasks.start_soon(run, pump)


class _SerialQueue:
    """The VM's serial console (vmdeck.console.serial.SerialStream) feeding an asyncio queue."""

    def __init__(self, host: Host, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        # FORCE: a tab left open elsewhere must not lock the user out of their own console.
        self.stream = SerialStream(host.conn, name, self._push, force=True)
        self.send = self.stream.send
        self.close = self.stream.close

    def _push(self, data: bytes | None) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.queue.put_nowait, data)


@router.websocket("/api/vms/{name}/console/serial")
async def serial_proxy(websocket: WebSocket, name: str) -> None:
    if not await _admit(websocket, name, "serial"):
        return
    ctx: AppContext = websocket.app.state.ctx
    loop = asyncio.get_running_loop()
    try:
        serial = await anyio.to_thread.run_sync(lambda: _SerialQueue(vm_host_of(ctx, name), name, loop))
    except VmdeckError as error:
        await websocket.close(code=1011, reason=error.message[:120])
        return
    await websocket.accept()
    watch = _watch(websocket)

    async def up() -> None:
        while (data := await _client_bytes(websocket)) is not None:
            await anyio.to_thread.run_sync(serial.send, data)

    async def down() -> None:
        while (data := await serial.queue.get()) is not None:
            await websocket.send_bytes(data)

    try:
        await _first_of(up, down, watch)
    finally:
        await anyio.to_thread.run_sync(serial.close)
        await _close_quietly(websocket, watch)


# Shared with the SSH tunnel (vmdeck.api.ssh_tunnel): the same admission, rights watch and byte pump.
admit = _admit
watch_rights = _watch
bridge_stream = _bridge_stream

"""The websocket tunnel to a VM's SSH server (api layer): `vmdeck --remote R ssh NAME` needs no port but the
web server's.

A VM made from an image forwards a port on this host's 127.0.0.1 to its port 22 (vmdeck.vm.ssh). A
customer cannot reach that loopback port, so the CLI asks for a ticket of kind "ssh" (POST
/api/vms/{name}/console/ticket, with its token), opens WS /api/vms/{name}/ssh?ticket=..., and ssh(1) talks
through it (its ProxyCommand is vmdeck bridging stdin/stdout to the websocket: vmdeck.cli.ssh_bridge).
Admitted like the serial console (ticket: single use, this user, this VM; Origin), tenant-checked by the
policy (the VM's project, operator), and closed when the caller's rights go (vmdeck.api.revocation).
Bytes pass through untouched: the SSH session is end-to-end between ssh(1) and the guest's sshd.
"""

from __future__ import annotations

import asyncio

import anyio
from fastapi import APIRouter, WebSocket

from vmdeck.api.console import admit, bridge_stream, watch_rights
from vmdeck.api.context import AppContext, vm_host_of
from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import HostError, StateError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.vm.ssh import ssh_forward
from vmdeck.vm.state import current_state

__all__ = ["router", "ssh_target"]

router = APIRouter(tags=["console"])


def ssh_target(host: Host, name: str) -> tuple[str, int]:
    """(address, port) of the running VM's SSH forward, on this machine's loopback."""
    if not host.is_local:
        raise HostError("the SSH tunnel reaches the VM's port forward on this machine: it needs a local libvirt host")
    dom = host.lookup(name)
    forward = ssh_forward(parse_domain(dom.xml()))
    state = current_state(dom)
    if state != "running":
        raise StateError(name, state, "running", "ssh into")
    # A forward on every address is still reached through loopback from here.
    address = forward.address if forward.address not in (None, "", "0.0.0.0", "::") else "127.0.0.1"
    return address, forward.host_port


@router.websocket("/api/vms/{name}/ssh")
async def ssh_tunnel(websocket: WebSocket, name: str) -> None:
    if not await admit(websocket, name, "ssh"):
        return
    ctx: AppContext = websocket.app.state.ctx
    try:
        address, port = await anyio.to_thread.run_sync(lambda: ssh_target(vm_host_of(ctx, name), name))
    except VmdeckError as error:
        await websocket.close(code=1011, reason=error.message[:120])
        return
    try:
        streams = await asyncio.open_connection(address, port)
    except OSError as error:
        await websocket.close(code=1011, reason=f"cannot reach the VM's SSH port forward: {error.strerror}"[:120])
        return
    await websocket.accept()
    await bridge_stream(websocket, *streams, watch_rights(websocket))

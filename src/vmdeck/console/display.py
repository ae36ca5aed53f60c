"""How to reach a running VM's graphical console: its VNC socket, or address and ports (console layer).

The socket path and the ports exist only while the VM runs, so they come from the live XML.
vmdeck's templates put VNC on a Unix socket in libvirt's per-VM folder, which only root and QEMU's
user can open: VNC has no password there, so a port on 127.0.0.1 would show every tenant's screen
to every local user. vmdeck's web UI proxies to that socket; as root, virt-viewer opens it (through
libvirt). A template that listens on an address instead is reached on loopback or through a tunnel.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import NotFound, StateError
from vmdeck.host.libvirt_api import Domain
from vmdeck.vm.state import current_state

__all__ = ["DisplayInfo", "display_info", "LOOPBACK"]

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class DisplayInfo:
    vm: str
    type: str  # "vnc" (vmdeck's templates) or "spice"
    listen: str  # an address, or "socket"
    port: int | None  # None on a socket
    websocket: int | None  # QEMU's own VNC-over-websocket port, for browsers (noVNC)
    loopback_only: bool  # nothing reachable from another machine (a socket is local by nature)
    socket: str | None = None  # the Unix socket's path

    @property
    def uri(self) -> str:
        if self.socket is not None:
            return f"{self.type}+unix://{self.socket}"
        host = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"{self.type}://{host}:{self.port}"

    @property
    def websocket_uri(self) -> str | None:
        if self.websocket is None:
            return None
        host = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"ws://{host}:{self.websocket}"


def display_info(dom: Domain) -> DisplayInfo:
    """The first graphical console of a running VM."""
    state = current_state(dom)
    if not state.has_console:
        raise StateError(dom.name, state, "running", "show the display of")
    view = parse_domain(dom.xml())
    for graphics in view.graphics:
        if graphics.type not in ("vnc", "spice"):
            continue
        if graphics.on_socket and graphics.socket:
            return DisplayInfo(dom.name, graphics.type, "socket", None, None, True, graphics.socket)
        if graphics.port and graphics.port > 0:
            listen = graphics.listen or "127.0.0.1"
            websocket = graphics.websocket if graphics.websocket and graphics.websocket > 0 else None
            return DisplayInfo(dom.name, graphics.type, listen, graphics.port, websocket, listen in LOOPBACK)
    raise NotFound(f"VM {dom.name!r} has no graphical console (its template has graphics: none)")

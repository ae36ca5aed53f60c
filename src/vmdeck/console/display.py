"""How to reach a running VM's graphical console: VNC address and websocket port (console layer).

The ports exist only while the VM runs (autoport), so they come from the live
XML. vmdeck's templates listen on 127.0.0.1: a remote viewer goes through an
SSH tunnel or vmdeck's web UI, never straight to an open VNC port.
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
    listen: str
    port: int
    websocket: int | None  # QEMU's own VNC-over-websocket port, for browsers (noVNC)
    loopback_only: bool

    @property
    def uri(self) -> str:
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
        if graphics.type in ("vnc", "spice") and graphics.port and graphics.port > 0:
            listen = graphics.listen or "127.0.0.1"
            websocket = graphics.websocket if graphics.websocket and graphics.websocket > 0 else None
            return DisplayInfo(dom.name, graphics.type, listen, graphics.port, websocket, listen in LOOPBACK)
    raise NotFound(f"VM {dom.name!r} has no graphical console (its template has graphics: none)")

"""libvirt's event loop for this process (core layer).

Domain events and non-blocking console streams need libvirt's default event
loop registered *before* the connections that use them are opened, and run by
exactly one thread per process: the CLI's serial console and the web server's
event stream both come here. The loop itself lives in the libvirt boundary.
"""

from __future__ import annotations

from vmdeck.host.libvirt_api import ensure_event_loop

__all__ = ["ensure_event_loop"]

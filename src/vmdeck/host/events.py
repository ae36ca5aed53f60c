"""libvirt's event loop for this process (core layer).

Domain events and non-blocking console streams need libvirt's default event
loop registered *before* the connections that use them are opened, and run by
exactly one thread per process: the CLI's serial console and the web server's
event stream both come here.
"""

from __future__ import annotations

import threading

import libvirt

__all__ = ["ensure_event_loop"]

_lock = threading.Lock()
_started = False


def ensure_event_loop() -> None:
    """Register libvirt's default event loop and run it in a daemon thread, once per process."""
    global _started
    with _lock:
        if _started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _started = True

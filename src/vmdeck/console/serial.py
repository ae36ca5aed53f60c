"""Attach a terminal to a VM's serial console through libvirt (console layer).

Follows libvirt-python's own consolecallback example: a second connection
opened after registering libvirt's default event loop, a non-blocking
virStream from virDomainOpenConsole, and the terminal in raw mode. Ctrl+]
(0x1d, as in virsh console and telnet) leaves. Works against remote hosts
too: the console travels through libvirtd, not through a local pty.
"""

from __future__ import annotations

import contextlib
import os
import sys
import termios
import threading
import tty
from collections.abc import Callable

import libvirt

from vmdeck.errors import HostError, NotFound, StateError
from vmdeck.host.connection import Host, libvirt_errors
from vmdeck.host.events import ensure_event_loop
from vmdeck.vm.state import current_state

__all__ = ["attach_console", "ESCAPE"]

ESCAPE = b"\x1d"  # Ctrl+]



class _Session:
    def __init__(self, stream: libvirt.virStream, infd: int, outfd: int) -> None:
        self.stream = stream
        self.infd = infd
        self.outfd = outfd
        self.done = threading.Event()
        self.reason = "detached"

    def on_stream(self, stream: libvirt.virStream, events: int, _opaque: object) -> None:
        if events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP):
            self.reason = "the console closed (the VM stopped?)"
            self.done.set()
            return
        if events & libvirt.VIR_STREAM_EVENT_READABLE:
            try:
                data = stream.recv(64 * 1024)
            except libvirt.libvirtError:
                self.reason = "the console closed"
                self.done.set()
                return
            if data == b"" or data is None:
                self.reason = "the console closed (the VM stopped?)"
                self.done.set()
            elif isinstance(data, bytes):
                os.write(self.outfd, data)

    def on_stdin(self, _watch: int, fd: int, _events: int, _opaque: object) -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            self.reason = "end of input"
            self.done.set()
            return
        if ESCAPE in data:
            data = data[: data.index(ESCAPE)]
            self.done.set()
        if data:
            with contextlib.suppress(libvirt.libvirtError):
                self.stream.send(data)


@contextlib.contextmanager
def _raw_terminal(fd: int):  # type: ignore[no-untyped-def]
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def attach_console(host: Host, name: str, *, infd: int | None = None, outfd: int | None = None,
                   announce: Callable[[str], None] = lambda _m: None, force: bool = False) -> str:
    """Connect the terminal to VM `name`'s serial console until Ctrl+] or the VM stops; returns why it ended."""
    dom = host.lookup(name)
    state = current_state(dom)
    if state not in ("running", "paused", "blocked"):
        raise StateError(name, state, "running", "attach to the console of")
    infd = sys.stdin.fileno() if infd is None else infd
    outfd = sys.stdout.fileno() if outfd is None else outfd
    ensure_event_loop()
    try:
        # Event callbacks only fire on connections opened after the loop was registered.
        conn = libvirt.open(host.uri)
    except libvirt.libvirtError as err:
        raise HostError(f"cannot open a console connection to {host.uri}: {err.get_error_message()}") from err
    try:
        with libvirt_errors(f"{name}: console"):
            try:
                console_dom = conn.lookupByName(name)
            except libvirt.libvirtError as err:
                raise NotFound(f"no VM named {name!r}") from err
            stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
            # FORCE takes the console over from another client, as `virsh console --force` does.
            console_dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else 0)
        session = _Session(stream, infd, outfd)
        announce(f"connected to {name}'s serial console (Ctrl+] leaves)")
        with _raw_terminal(infd):
            stream.eventAddCallback(
                libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP,
                session.on_stream, None)
            watch = libvirt.virEventAddHandle(infd, libvirt.VIR_EVENT_HANDLE_READABLE, session.on_stdin, None)
            try:
                session.done.wait()
            finally:
                libvirt.virEventRemoveHandle(watch)
                with contextlib.suppress(libvirt.libvirtError):
                    stream.eventRemoveCallback()
                with contextlib.suppress(libvirt.libvirtError):
                    stream.finish()
        return session.reason
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()

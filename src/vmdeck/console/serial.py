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
import threading
from collections.abc import Callable

from vmdeck.console.terminal import ESCAPE, raw_terminal
from vmdeck.errors import HostError, StateError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.events import ensure_event_loop
from vmdeck.host.libvirt_api import Connection, add_fd_watch, open_connection, remove_fd_watch
from vmdeck.vm.state import current_state

__all__ = ["attach_console", "ESCAPE", "SerialStream"]

_CHUNK = 1 << 16


class SerialStream:
    """A VM's serial console on a non-blocking libvirt stream (virDomainOpenConsole).

    Output arrives on libvirt's event thread: `on_data(bytes)` for each chunk, then
    `on_data(None)` once when the console closes (the VM stopped, another client took it).
    The CLI's terminal and the web server's websocket both read the console through this.
    """

    def __init__(self, conn: Connection, name: str, on_data: Callable[[bytes | None], None], *,
                 force: bool = False) -> None:
        self.on_data = on_data
        self._closed = False
        dom = conn.lookup(name)
        self.stream = conn.new_stream(nonblocking=True, context=f"serial console of {name}")
        # FORCE takes the console over from another client, as `virsh console --force` does.
        dom.open_console(self.stream, force=force)
        self.stream.watch(self._on_event)

    def _end(self) -> None:
        if not self._closed:
            self._closed = True
            self.on_data(None)

    def _on_event(self, readable: bool, closed: bool) -> None:
        if readable:
            # Drain what is there: one event may stand for several chunks.
            while True:
                try:
                    data = self.stream.recv(_CHUNK)
                except VmdeckError:
                    self._end()
                    return
                if data is None:  # EAGAIN: all read for now
                    break
                if data == b"":
                    self._end()
                    return
                self.on_data(data)
        if closed:
            self._end()

    def send(self, data: bytes) -> None:
        self.stream.send_all(data)

    def close(self) -> None:
        self.stream.close_quietly()


class _Session:
    def __init__(self, outfd: int) -> None:
        self.outfd = outfd
        self.stream: SerialStream | None = None
        self.done = threading.Event()
        self.reason = "detached"

    def on_data(self, data: bytes | None) -> None:
        if data is None:
            self.reason = "the console closed (the VM stopped?)"
            self.done.set()
        else:
            os.write(self.outfd, data)

    def on_stdin(self, fd: int) -> None:
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
        if data and self.stream is not None:
            with contextlib.suppress(VmdeckError):
                self.stream.send(data)


def attach_console(host: Host, name: str, *, infd: int | None = None, outfd: int | None = None,
                   announce: Callable[[str], None] = lambda _m: None, force: bool = False) -> str:
    """Connect the terminal to VM `name`'s serial console until Ctrl+] or the VM stops; returns why it ended."""
    dom = host.lookup(name)
    state = current_state(dom)
    if not state.has_console:
        raise StateError(name, state, "running", "attach to the console of")
    infd = sys.stdin.fileno() if infd is None else infd
    outfd = sys.stdout.fileno() if outfd is None else outfd
    ensure_event_loop()
    try:
        # Event callbacks only fire on connections opened after the loop was registered.
        conn = open_connection(host.uri)
    except HostError as err:
        raise HostError(f"cannot open a console connection to {host.uri}: {err.libvirt_text or err}") from err
    try:
        session = _Session(outfd)
        session.stream = SerialStream(conn, name, session.on_data, force=force)
        announce(f"connected to {name}'s serial console (Ctrl+] leaves)")
        with raw_terminal(infd):
            watch = add_fd_watch(infd, session.on_stdin)
            try:
                session.done.wait()
            finally:
                remove_fd_watch(watch)
                session.stream.close()
        return session.reason
    finally:
        conn.close()

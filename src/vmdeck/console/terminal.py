"""The user's terminal during a serial console (console layer): raw mode, and the key that leaves.

Shared by the local console (vmdeck.console.serial, through libvirt) and the one through a server
(vmdeck.cli.remote_socket, on a customer's machine without libvirt): so this module imports neither.
"""

from __future__ import annotations

import contextlib
import os
import termios
import tty
from collections.abc import Iterator

__all__ = ["ESCAPE", "raw_terminal"]

ESCAPE = b"\x1d"  # Ctrl+], as virsh console and telnet leave


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """`fd` in raw mode (each key as typed, no echo) for the block, restored after; not a terminal: as is."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

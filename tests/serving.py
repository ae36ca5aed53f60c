"""Starting `vmdeck serve` in tests: a free loopback port, and the wait until it answers
(the tests folder's shared helpers, next to testdriver; imported by unit, integration and browser tests)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import httpx

__all__ = ["free_port", "wait_for_serve"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_serve(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 180, *,
                   verify: bool = True) -> None:
    """Until `vmdeck serve` answers its sign-in page; its log in the error when it exits or never answers.
    The bounds are generous: a loaded machine may take a minute to start the server and to render a page."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/login", timeout=10, verify=verify).status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"vmdeck serve did not come up:\n{log.read_text()}")
        time.sleep(0.2)

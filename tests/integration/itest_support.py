"""Small helpers and names for integration tests (import as `from itest_support import wait_for`).

Tests import these from here, never from `conftest`: with the browser tests collected in the same run,
`conftest` may name tests/e2e/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.vm import lifecycle

# The pid in the name tells this run's VMs from those of a concurrent run (another engineer's)
# and from leftovers of a dead one, which are the only ones cleaned up at start.
PREFIX = f"vmdeck-test-{os.getpid()}-"
VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]
# An upper bound, not an expectation: the tiny guest is ready in seconds on a quiet host, but a
# loaded 2-core machine running TCG guests side by side can take minutes; the wait ends on the
# ready marker itself.
READY_TIMEOUT_S = 600


def delete_vm(host: Host, name: str) -> None:
    """Delete a test VM and its disks, running or not; nothing when it is already gone."""
    with contextlib.suppress(NotFound):
        lifecycle.delete(host, name, force=True)


def wait_for(probe: Callable[[], object], timeout: float = 120, interval: float = 0.5) -> object:
    """Call `probe` until it returns something truthy (exceptions count as not yet); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as error:  # the guest may be rebooting: try again
            last_error = error
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last error: {last_error})")

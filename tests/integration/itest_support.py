"""Small helpers for integration tests (import as `from itest_support import wait_for`)."""

from __future__ import annotations

import time
from collections.abc import Callable


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

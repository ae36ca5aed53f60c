"""Sign-in throttling per user name and per client address (api layer).

After a few wrong passwords in a row, the next attempt for that user (or from that
address) must wait: 1 s, then 2, 4 ... at most 30 s, answered 429 with Retry-After.
A right password clears the count, and a pause of ten minutes forgets it, so the
real user is never locked out for long while guessing becomes slow.

Every attempt is counted when it starts (`attempt`), before the password is checked:
checking takes a tenth of a second (Argon2), and attempts sent in parallel would
otherwise all pass the gate before the first failure is written down.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["LoginThrottle"]

FREE_FAILURES = 5
MAX_WAIT_S = 30.0
FORGET_AFTER_S = 600.0
_MAX_KEYS = 10_000  # made-up user names must not grow memory without bound


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (count, last failure)
        self._lock = threading.Lock()

    def _wait(self, key: str, now: float) -> float:
        entry = self._failures.get(key)
        if entry is None:
            return 0.0
        count, last = entry
        if now - last > FORGET_AFTER_S:
            del self._failures[key]
            return 0.0
        if count < FREE_FAILURES:
            return 0.0
        delay = min(MAX_WAIT_S, 2.0 ** (count - FREE_FAILURES))
        return max(0.0, last + delay - now)

    def retry_after(self, username: str, address: str) -> int:
        """Seconds to wait before this attempt may be checked (0: go ahead)."""
        now = self.clock()
        with self._lock:
            wait = max(self._wait(f"u:{username}", now), self._wait(f"a:{address}", now))
        return math.ceil(wait)

    def attempt(self, username: str, address: str) -> int:
        """Let one sign-in attempt through (0), counted as a failure until `succeeded` clears it,
        or the seconds to wait (the attempt is refused and not counted)."""
        now = self.clock()
        with self._lock:
            wait = max(self._wait(f"u:{username}", now), self._wait(f"a:{address}", now))
            if wait:
                return math.ceil(wait)
            self._count(username, address, now)
        return 0

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            self._count(username, address, now)

    def _count(self, username: str, address: str, now: float) -> None:
        # Under the lock.
        for key in (f"u:{username}", f"a:{address}"):
            count, _last = self._failures.pop(key, (0, now))
            self._failures[key] = (count + 1, now)
        while len(self._failures) > _MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop(f"u:{username}", None)
            self._failures.pop(f"a:{address}", None)

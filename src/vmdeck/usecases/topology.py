"""One host or several: the one rule every door uses to choose (use-case layer, light: on `vmdeck list`'s path)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmdeck.cluster.registry import HostEntry

__all__ = ["only_local"]


def only_local(entries: list[HostEntry]) -> bool:
    """True when only the default local host is registered: requests then go to the one host, without the
    fleet's deadline machinery. A single *remote* host still goes through the fleet, whose deadlines keep
    a silent host from hanging a request."""
    return len(entries) == 1 and entries[0].uri is None

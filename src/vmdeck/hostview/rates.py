"""Rate math shared by the host view: counters read twice become per-second rates and shares (pure)."""

from __future__ import annotations

__all__ = ["delta_per_s", "share_pct"]


def delta_per_s(current: int | float | None, previous: int | float | None, interval_s: float) -> float | None:
    """(current - previous) / interval, or None when either reading is missing or the counter went back
    (a counter that decreases was reset: QEMU restarted, a disk was replaced), which is not a rate."""
    if current is None or previous is None or interval_s <= 0:
        return None
    delta = current - previous
    if delta < 0:
        return None
    return round(delta / interval_s, 3)


def share_pct(delta_ns: int, interval_s: float) -> float | None:
    """The share of an interval that `delta_ns` of thread time represents, in percent (one CPU = 100)."""
    if interval_s <= 0 or delta_ns < 0:
        return None
    return round(delta_ns / (interval_s * 1e9) * 100, 1)

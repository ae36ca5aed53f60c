"""Round-robin history files: a fixed-size file per VM and per host, written in place (core layer).

Three tiers, like rrdtool's RRAs: 10 s steps for 1 hour (360 slots), 1 minute for 1 day (1440) and
10 minutes for 30 days (4320). A slot's place in its tier follows from its time
(bucket = t // step, slot = bucket % slots), so there is no head pointer to keep consistent: a write
is one 44-byte pwrite per tier, a crash loses at most the slot being written, and a restart carries on
where the clock says. Each slot holds its bucket's start time, how many samples it averages, and the
mean of each field (NaN: unknown); a sample arriving in a bucket already holding n samples is merged
into the mean, also after a restart. A slot whose time is not in the requested window is old data
from a previous lap and is skipped.

Size: 16-byte header + 6120 slots x 44 bytes = 269,296 bytes (263 KiB) per VM and per host, whatever
the uptime; files of VMs not seen for 30 days are removed (`prune`).
"""

from __future__ import annotations

import math
import os
import re
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from vmdeck.metrics.rates import FIELDS

__all__ = ["TIERS", "RANGES", "FILE_BYTES", "HistoryStore", "Series"]

MAGIC = b"VMDKHIS1" + struct.pack("<II", len(FIELDS), 0)
SLOT = struct.Struct("<dd" + "f" * len(FIELDS))  # bucket start, samples in it, one float32 per field


@dataclass(frozen=True)
class Tier:
    step_s: int
    slots: int

    @property
    def span_s(self) -> int:
        return self.step_s * self.slots


TIERS = (Tier(10, 360), Tier(60, 1440), Tier(600, 4320))
RANGES = {"1h": TIERS[0], "1d": TIERS[1], "30d": TIERS[2]}
FILE_BYTES = len(MAGIC) + sum(t.slots for t in TIERS) * SLOT.size
KEEP_GONE_S = 30 * 86400


@dataclass(frozen=True)
class Series:
    range: str
    step_s: int
    fields: tuple[str, ...]
    points: list[list[float | None]]  # [t, value per field]; None: unknown

    def to_dict(self) -> dict[str, object]:
        return {"range": self.range, "step_s": self.step_s, "fields": ["t", *self.fields], "points": self.points}


def _offset(tier_index: int, slot: int) -> int:
    return len(MAGIC) + (sum(t.slots for t in TIERS[:tier_index]) + slot) * SLOT.size


def file_name(kind: str, name: str) -> str:
    """A safe file name for VM or host `name` (libvirt allows nearly any character in a VM name)."""
    safe = name if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}", name) else quote(name, safe="")
    return f"{kind}-{safe}.hist"


class HistoryStore:
    """The history files under one directory (the server's data dir): `vm-<uuid>.hist`, `host-<name>.hist`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._fds: dict[str, int] = {}

    def _fd(self, kind: str, name: str, *, create: bool) -> int | None:
        key = file_name(kind, name)
        with self._lock:
            fd = self._fds.get(key)
            if fd is not None:
                return fd
            path = self.directory / key
            if not create and not path.exists():
                return None
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(fd).st_size != FILE_BYTES or os.pread(fd, len(MAGIC), 0) != MAGIC:
                # New, or of another layout: start it empty (sparse: unused slots take no disk).
                os.ftruncate(fd, 0)
                os.ftruncate(fd, FILE_BYTES)
                os.pwrite(fd, MAGIC, 0)
            self._fds[key] = fd
            return fd

    def record(self, kind: str, name: str, at: float, values: tuple[float | None, ...]) -> None:
        """Merge one sample taken at epoch `at` into every tier of `kind`'s ("vm", "host") file `name`."""
        fd = self._fd(kind, name, create=True)
        assert fd is not None
        for index, tier in enumerate(TIERS):
            bucket = int(at // tier.step_s)
            offset = _offset(index, bucket % tier.slots)
            start, count, *old = SLOT.unpack(os.pread(fd, SLOT.size, offset))
            if start != bucket * tier.step_s:
                count, old = 0.0, [math.nan] * len(FIELDS)
            merged = []
            for previous, value in zip(old, values, strict=True):
                if value is None or math.isnan(value):
                    merged.append(previous)
                elif math.isnan(previous) or count == 0:
                    merged.append(value)
                else:
                    merged.append((previous * count + value) / (count + 1))
            os.pwrite(fd, SLOT.pack(bucket * tier.step_s, count + 1, *merged), offset)

    def read(self, kind: str, name: str, range_name: str, now: float | None = None) -> Series | None:
        """The points of one range, oldest first; None when nothing was ever recorded for `name`."""
        tier = RANGES[range_name]
        index = TIERS.index(tier)
        fd = self._fd(kind, name, create=False)
        if fd is None:
            return None
        now = time.time() if now is None else now
        raw = os.pread(fd, tier.slots * SLOT.size, _offset(index, 0))
        points = []
        for start, count, *values in SLOT.iter_unpack(raw):
            if count > 0 and now - tier.span_s < start <= now:
                points.append([start, *(None if math.isnan(v) else round(v, 3) for v in values)])
        points.sort(key=lambda p: p[0] or 0.0)
        return Series(range_name, tier.step_s, FIELDS, points)

    def forget(self, kind: str, name: str) -> None:
        key = file_name(kind, name)
        with self._lock:
            fd = self._fds.pop(key, None)
            if fd is not None:
                os.close(fd)
            (self.directory / key).unlink(missing_ok=True)

    def prune(self, keep: set[str], now: float | None = None) -> list[str]:
        """Remove the files of VMs not in `keep` (their keys: UUIDs) that were not written for 30 days."""
        now = time.time() if now is None else now
        removed: list[str] = []
        if not self.directory.is_dir():
            return removed
        wanted = {file_name("vm", name) for name in keep}
        for path in self.directory.glob("vm-*.hist"):
            if path.name not in wanted and now - path.stat().st_mtime > KEEP_GONE_S:
                with self._lock:
                    fd = self._fds.pop(path.name, None)
                    if fd is not None:
                        os.close(fd)
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

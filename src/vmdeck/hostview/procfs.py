"""Parsers for the Linux /proc and /sys text formats the host view reads (core layer, pure + tiny readers).

Every parser takes the file's text and returns plain values, so unit tests run
them on sample text; the `read_*` helpers are the only functions that touch the
file system, and they return None when the process or thread has gone away
(a VM can be destroyed between two reads: that is normal, not an error).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLK_TCK", "PAGE_SIZE", "parse_stat", "parse_status", "parse_schedstat", "parse_kib_fields",
    "SmapsEntry", "parse_smaps", "smaps_pss_kib", "parse_cpu_list", "format_cpu_list", "read_text", "boot_time",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")  # utime/stime in /proc/*/stat are in these ticks (100 per second)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def read_text(path: str | Path) -> str | None:
    """The file's text, or None when it vanished (thread exited, VM destroyed) or cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None


def parse_stat(text: str) -> dict[str, int | str]:
    """/proc/PID[/task/TID]/stat -> the fields the host view needs.

    The comm field is wrapped in parentheses and may itself contain spaces and
    ')' ("CPU 0/TCG", "IO mon_iothread"), so split at the LAST ')' as proc(5) advises.
    Field numbers below are proc(5)'s 1-based ones.
    """
    head, _, tail = text.rpartition(")")
    pid_part, _, comm = head.partition(" (")
    rest = tail.split()
    # rest[0] is field 3 (state); field N is rest[N - 3].
    return {
        "pid": int(pid_part),
        "comm": comm,
        "state": rest[0],
        "utime_ticks": int(rest[14 - 3]),
        "stime_ticks": int(rest[15 - 3]),
        "num_threads": int(rest[20 - 3]),
        "starttime_ticks": int(rest[22 - 3]),
        "processor": int(rest[39 - 3]),  # the CPU the thread last ran on
    }


def parse_status(text: str) -> dict[str, str]:
    """/proc/PID/status "Key:\tvalue" lines -> {key: value} (values stripped, units left on)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def parse_kib_fields(text: str) -> dict[str, int]:
    """Lines like "RssAnon:   253280 kB" (status, meminfo, smaps_rollup) -> {"RssAnon": 253280} in KiB."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        parts = value.split()
        if parts and parts[0].isdigit() and (len(parts) == 1 or parts[1] == "kB"):
            values[key] = int(parts[0])
    return values


def parse_schedstat(text: str) -> tuple[int, int, int]:
    """/proc/.../schedstat: (ns on a CPU, ns waiting on a run queue, timeslices run)."""
    run_ns, delay_ns, slices = (int(x) for x in text.split()[:3])
    return run_ns, delay_ns, slices


@dataclass(frozen=True)
class SmapsEntry:
    start: int
    end: int
    perms: str
    path: str  # "" for anonymous mappings, "[heap]", "/usr/bin/qemu-system-x86_64" ...
    size_kib: int
    rss_kib: int
    pss_kib: int
    anon_huge_kib: int
    swap_kib: int

    @property
    def anonymous(self) -> bool:
        return self.path == ""


_SMAPS_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+[ \t]*(.*)$", re.M)
_SMAPS_FIELD = re.compile(r"^(Size|Rss|Pss|AnonHugePages|Swap):\s+(\d+) kB$", re.M)
_SMAPS_PSS = re.compile(r"^Pss:\s+(\d+) kB$", re.M)


def smaps_pss_kib(text: str) -> int:
    """The process's proportional set size: the sum of every mapping's Pss."""
    return sum(int(v) for v in _SMAPS_PSS.findall(text))


def parse_smaps(text: str, want: Callable[[str, str], bool] | None = None) -> list[SmapsEntry]:
    """/proc/PID/smaps -> one entry per mapping with its size and resident parts.

    A QEMU process has hundreds of mappings (libraries, TCG buffers, thread stacks): the text is a few
    hundred KiB, so it is scanned with two compiled regexes rather than line by line, and `want(perms,
    path)` can skip the fields of mappings the caller does not need.
    """
    headers = list(_SMAPS_HEADER.finditer(text))
    entries: list[SmapsEntry] = []
    for i, header in enumerate(headers):
        if want is not None and not want(header.group(3), header.group(4).strip()):
            continue
        block_end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        values = {m.group(1): int(m.group(2)) for m in _SMAPS_FIELD.finditer(text, header.end(), block_end)}
        entries.append(SmapsEntry(
            start=int(header.group(1), 16), end=int(header.group(2), 16), perms=header.group(3),
            path=header.group(4).strip(),
            size_kib=values.get("Size", 0), rss_kib=values.get("Rss", 0), pss_kib=values.get("Pss", 0),
            anon_huge_kib=values.get("AnonHugePages", 0), swap_kib=values.get("Swap", 0),
        ))
    return entries


def parse_cpu_list(text: str) -> list[int]:
    """ "0-2,5" -> [0, 1, 2, 5] (the kernel's and libvirt's CPU list syntax). Raises ValueError."""
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        low, sep, high = part.partition("-")
        if sep:
            first, last = int(low), int(high)
            if first > last:
                raise ValueError(f"range {part!r} runs backwards")
            cpus.update(range(first, last + 1))
        else:
            cpus.add(int(low))
    if any(cpu < 0 for cpu in cpus):
        raise ValueError("CPU numbers cannot be negative")
    return sorted(cpus)


def format_cpu_list(cpus: list[int] | tuple[int, ...] | set[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def boot_time(stat_text: str | None = None) -> int:
    """Seconds since the epoch when the host booted ("btime" in /proc/stat)."""
    text = stat_text if stat_text is not None else (read_text("/proc/stat") or "")
    for line in text.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    return 0

"""Records of work in flight, so a process killed mid-way leaves traces `vmdeck doctor` can find (storage layer).

Before vmdeck creates a volume for a VM it writes down, in data_dir()/journal/, which
operation it is in, for which VM, in which process. When the operation ends (the VM is
defined and its volumes are in its metadata, or everything was rolled back) the record
goes. A record whose process is gone therefore marks an operation that never finished:
the volumes it names that no VM uses are leftovers.

Temporary files (uploads, builds) carry their writer's process in their name
(`.NAME.vmdeck-PID-START.part`) and are published by an atomic rename or link, so a
file with the final name is always complete and a stale temporary file is recognisable.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from vmdeck.errors import HostError
from vmdeck.paths import data_dir

__all__ = ["Journal", "JournalEntry", "journal_dir", "stale_entries", "process_token", "token_alive",
           "temp_path", "temp_owner", "TEMP_PATTERN"]

# `.NAME.vmdeck-PID-STARTTICKS.part`; the older upload name `.NAME.part` has no owner at all.
TEMP_PATTERN = re.compile(r"^\.(?P<name>.+?)(?:\.vmdeck-(?P<pid>\d+)-(?P<start>\d+)(?:-[0-9a-f]+)?)?\.part$")


def journal_dir() -> Path:
    return data_dir() / "journal"


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot): tells a live process from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_token(pid: int | None = None) -> tuple[int, int]:
    pid = pid or os.getpid()
    return pid, _start_ticks(pid) or 0


def token_alive(pid: int, start: int) -> bool:
    return _start_ticks(pid) == start


def temp_path(target: Path) -> Path:
    """Where to write `target` before publishing it: a hidden, per-writer name beside it."""
    pid, start = process_token()
    return target.with_name(f".{target.name}.vmdeck-{pid}-{start}-{secrets.token_hex(3)}.part")


def temp_owner(path: Path) -> tuple[str, tuple[int, int] | None] | None:
    """(final name, writer's process token or None) for a vmdeck temporary file, None for any other file."""
    match = TEMP_PATTERN.match(path.name)
    if match is None:
        return None
    if match.group("pid") is None:
        return match.group("name"), None
    return match.group("name"), (int(match.group("pid")), int(match.group("start")))


@dataclass
class JournalEntry:
    path: Path
    operation: str
    vm: str
    pid: int
    start: int
    started: float
    volumes: list[str] = field(default_factory=list)  # names of volumes in vmdeck's pool, noted before creation
    files: list[str] = field(default_factory=list)  # other files created for the VM (seed ISOs ...)

    @property
    def alive(self) -> bool:
        return self.pid != 0 and token_alive(self.pid, self.start)


class Journal:
    """`with Journal("create", name) as j: j.volume(path) ...; j.commit()` — what a crash would leave."""

    def __init__(self, operation: str, vm: str) -> None:
        pid, start = process_token()
        folder = journal_dir()
        self.entry = JournalEntry(folder / f"{operation}-{pid}-{secrets.token_hex(4)}.json", operation, vm, pid,
                                  start, time.time())

    def _save(self) -> None:
        data = {k: v for k, v in vars(self.entry).items() if k != "path"}
        partial = self.entry.path.with_suffix(".tmp")
        try:
            self.entry.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(data))
            os.replace(partial, self.entry.path)  # a reader sees the old record or the new one, never half
        except OSError as err:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            if err.errno == errno.ENOSPC:
                raise HostError(f"no space left on {self.entry.path.parent} (vmdeck's journal of "
                                f"{self.entry.operation} {self.entry.vm})") from err
            raise HostError(f"cannot write vmdeck's journal in {self.entry.path.parent}: {err.strerror}") from err

    def volume(self, name: str) -> None:
        """Note a pool volume about to be created (first: a crash right after creating it is covered)."""
        self.entry.volumes.append(name)
        self._save()

    def file(self, path: str | Path) -> None:
        self.entry.files.append(str(path))
        self._save()

    def close(self) -> None:
        """The operation ended: committed, or rolled back completely."""
        self.closed = True
        self.entry.path.unlink(missing_ok=True)

    def abandon(self) -> None:
        """The operation failed and its rollback did not finish: hand the record to `vmdeck doctor`."""
        self.entry.pid = self.entry.start = 0
        self._save()

    def __enter__(self) -> Journal:
        self.closed = False
        self._save()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        # A caller that rolled back completely has closed the record already; a killed process
        # never gets here, and its record is found by its dead pid.
        if self.closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abandon()


def read_entries() -> list[JournalEntry]:
    entries = []
    folder = journal_dir()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            entries.append(JournalEntry(path=path, **data))
        except (OSError, ValueError, TypeError):
            continue  # being replaced right now, or not ours
    return entries


def stale_entries() -> list[JournalEntry]:
    """Records of operations whose process is gone (killed, or the machine rebooted)."""
    return [entry for entry in read_entries() if not entry.alive]

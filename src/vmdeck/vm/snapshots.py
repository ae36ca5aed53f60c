"""The snapshot tree of one VM, as vmdeck records it (pure: no I/O, no libvirt).

A snapshot freezes, per disk, the image the VM was writing at that moment (its
*frozen image*); the VM goes on writing to a new qcow2 overlay on top of it.
Reverting puts a fresh overlay on the frozen images, so one snapshot can be
reverted to any number of times, and a snapshot taken after a revert starts a
branch. `parent` is the snapshot that was current when this one was taken;
`current` is the snapshot the VM's present state descends from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from vmdeck.errors import Conflict, InvalidInput, NotFound

__all__ = ["SNAPSHOT_NAME_RE", "SnapshotRecord", "SnapshotTree", "check_snapshot_name"]

SNAPSHOT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_snapshot_name(name: str) -> str:
    if not SNAPSHOT_NAME_RE.fullmatch(name):
        raise InvalidInput(f"invalid snapshot name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit (no '/')", field="name")
    return name


@dataclass(frozen=True)
class SnapshotRecord:
    name: str
    created: str  # ISO 8601, UTC
    parent: str | None
    state: str  # the VM's state when taken: "running" or "shut off"
    disks: tuple[tuple[str, str], ...]  # (target, frozen image path)
    description: str = ""
    memory: str | None = None  # saved memory + device state (libvirt save format), with --memory
    nvram: str | None = None  # copy of a UEFI VM's variable store at snapshot time
    quiesced: bool = False

    def frozen(self, target: str) -> str | None:
        return next((path for t, path in self.disks if t == target), None)

    @property
    def files(self) -> tuple[str, ...]:
        """Files that belong to this snapshot alone (the frozen images may be shared)."""
        return tuple(p for p in (self.memory, self.nvram) if p)


@dataclass(frozen=True)
class SnapshotTree:
    snapshots: tuple[SnapshotRecord, ...] = ()
    current: str | None = None
    created_files: tuple[str, ...] = field(default=())  # every overlay/memory/NVRAM file vmdeck made

    def get(self, name: str) -> SnapshotRecord:
        for snap in self.snapshots:
            if snap.name == name:
                return snap
        known = ", ".join(s.name for s in self.snapshots) or "none"
        raise NotFound(f"no snapshot named {name!r} (snapshots: {known})")

    def has(self, name: str) -> bool:
        return any(s.name == name for s in self.snapshots)

    def children(self, name: str | None) -> tuple[SnapshotRecord, ...]:
        return tuple(s for s in self.snapshots if s.parent == name)

    def add(self, snap: SnapshotRecord, new_files: tuple[str, ...] = ()) -> SnapshotTree:
        if self.has(snap.name):
            raise Conflict(f"a snapshot named {snap.name!r} already exists")
        return replace(self, snapshots=(*self.snapshots, snap), current=snap.name,
                       created_files=(*self.created_files, *new_files))

    def without(self, name: str) -> SnapshotTree:
        """`name` removed; its children hang from its parent, and current moves up if it was current."""
        gone = self.get(name)
        kept = tuple(replace(s, parent=gone.parent) if s.parent == name else s
                     for s in self.snapshots if s.name != name)
        return replace(self, snapshots=kept, current=gone.parent if self.current == name else self.current)

    def with_files(self, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> SnapshotTree:
        files = tuple(f for f in self.created_files if f not in remove)
        return replace(self, created_files=(*files, *(f for f in add if f not in files)))

    def replace_image(self, old: str, new: str) -> SnapshotTree:
        """After a merge, records that named `old` as a frozen image name `new`."""
        snaps = tuple(replace(s, disks=tuple((t, new if p == old else p) for t, p in s.disks))
                      for s in self.snapshots)
        return replace(self, snapshots=snaps)

    def frozen_images(self) -> set[str]:
        return {path for s in self.snapshots for _t, path in s.disks}

    def to_dict(self) -> dict[str, object]:
        """The tree as JSON-ready data (CLI --json and the API): each snapshot with its children."""
        return {"current": self.current, "snapshots": [
            {"name": s.name, "created": s.created, "parent": s.parent, "state": s.state,
             "description": s.description, "memory": s.memory, "nvram": s.nvram, "quiesced": s.quiesced,
             "disks": [{"target": t, "image": p} for t, p in s.disks],
             "children": [c.name for c in self.children(s.name)]} for s in self.snapshots]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotTree:
        """The tree again from to_dict's data (a server's answer), for the same rendering as in-process."""
        snaps = tuple(SnapshotRecord(name=s["name"], created=s["created"], parent=s["parent"], state=s["state"],
                                     disks=tuple((d["target"], d["image"]) for d in s["disks"]),
                                     description=s.get("description") or "", memory=s.get("memory"),
                                     nvram=s.get("nvram"), quiesced=bool(s.get("quiesced")))
                      for s in data.get("snapshots", []))
        return cls(snapshots=snaps, current=data.get("current"))

    def lines(self) -> list[tuple[str, SnapshotRecord]]:
        """(tree prefix, record) in display order: children under their parent, oldest first."""
        rows: list[tuple[str, SnapshotRecord]] = []

        def walk(parent: str | None, prefix: str) -> None:
            kids = sorted(self.children(parent), key=lambda s: s.created)
            for index, snap in enumerate(kids):
                last = index == len(kids) - 1
                rows.append((prefix + ("└─ " if last else "├─ ") if parent is not None else "", snap))
                walk(snap.name, (prefix + ("   " if last else "│  ")) if parent is not None else "")

        walk(None, "")
        return rows

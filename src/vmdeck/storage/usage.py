"""Who uses which image file on this host: every VM's disks, their backing chains, snapshot records (core layer).

This is the one question vmdeck asks before it deletes or writes into an image
that snapshots or linked clones made: it looks at *every* VM's configuration
and live definition (not only the VM being changed), every file in vmdeck's
pool, and every snapshot record, so an image another VM (a linked clone) still
reads is never removed or merged into.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from vmdeck.domxml.parse import parse_domain
from vmdeck.domxml.snapshots import read_tree
from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.paths import pool_dir
from vmdeck.storage.images import read_backing

__all__ = ["ImageUsage", "image_usage"]


@dataclass
class ImageUsage:
    """users[path]: who depends on `path` — "vm:NAME:TARGET" (a disk source), "image:PATH" (an overlay on it),
    "snapshot:NAME:SNAP" (a frozen image or saved state a snapshot record names)."""

    users: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    backing: dict[str, str | None] = field(default_factory=dict)

    def users_of(self, path: str) -> set[str]:
        return set(self.users.get(path, set()))

    def vms_using(self, path: str) -> set[str]:
        """Names of the VMs whose disks read `path`, directly or through a chain of overlays."""
        found: set[str] = set()
        todo = [path]
        seen: set[str] = set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            for user in self.users.get(current, ()):
                kind, _, rest = user.partition(":")
                if kind == "image":
                    todo.append(rest)
                else:
                    found.add(rest.split(":", 1)[0])
        return found

    def in_use(self, path: str) -> bool:
        return bool(self.users.get(path))


def _walk(usage: ImageUsage, path: str) -> None:
    """Record `path`'s chain: each image is a user of its backing file."""
    current: str | None = path
    while current is not None and current not in usage.backing:
        if not Path(current).exists():
            usage.backing[current] = None
            return
        backing = read_backing(current)
        usage.backing[current] = backing
        if backing is not None:
            usage.users[backing].add(f"image:{current}")
        current = backing


def image_usage(host: Host) -> ImageUsage:
    usage = ImageUsage()
    for dom in host.conn.domains():
        xmls = []
        with contextlib.suppress(VmdeckError):  # a VM may vanish while we look
            if dom.is_persistent():
                xmls.append(dom.xml(inactive=True))
            if dom.is_active():
                xmls.append(dom.xml())
        for xml in xmls:
            view = parse_domain(xml)
            for disk in view.disks:
                if disk.source and disk.device != "cdrom" and disk.source.startswith("/"):
                    usage.users[disk.source].add(f"vm:{view.name}:{disk.target}")
                    _walk(usage, disk.source)
            tree = read_tree(xml)
            for snap in tree.snapshots:
                for _target, image in snap.disks:
                    usage.users[image].add(f"snapshot:{view.name}:{snap.name}")
                    _walk(usage, image)
                for extra in snap.files:
                    usage.users[extra].add(f"snapshot:{view.name}:{snap.name}")
    pool = pool_dir()
    if pool.is_dir():
        for path in sorted(pool.iterdir()):
            if path.is_file() and path.suffix == ".qcow2":
                _walk(usage, str(path))
    return usage

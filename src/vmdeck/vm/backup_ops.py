"""Backups in a repository: list, show, verify, prune, cancel (core layer).

Pruning never breaks a chain: a kept incremental whose ancestors go is first made
self-contained (its disks rewritten with `qemu-img convert` through the chain, published by
rename, its manifest rewritten atomically), then the backups nothing keeps are removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from vmdeck.errors import InvalidInput, NotFound
from vmdeck.storage.backup_repo import BackupFile, Manifest, Repository, sha256_of
from vmdeck.storage.journal import temp_path
from vmdeck.vm.backup_restore import qemu_img_convert

__all__ = ["list_backups", "show_backup", "VerifyReport", "verify_backup", "PruneReport", "prune_backups",
           "cancel_backups", "retained"]

Progress = Callable[[str], None]


def list_backups(vm: str | None = None, *, repo: str | Path | None = None) -> list[Manifest]:
    return Repository(repo).manifests(vm)


def show_backup(backup_id: str, *, repo: str | Path | None = None) -> dict[str, Any]:
    repository = Repository(repo)
    manifest, intact = repository.read(backup_id)
    data = manifest.to_dict()
    data["manifest_intact"] = intact
    data["chain"] = [m.id for m in repository.chain(manifest)] if intact else []
    data["repo"] = str(repository.root)
    return data


@dataclass
class VerifyReport:
    backup: str
    checked: list[str] = field(default_factory=list)  # "ID/file" verified
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def message(self) -> str:
        if self.ok:
            return f"backup {self.backup}: {len(self.checked)} file(s) and their manifests verified, all intact"
        return f"backup {self.backup} is damaged: " + "; ".join(self.problems)


def verify_backup(backup_id: str, *, repo: str | Path | None = None, progress: Progress = lambda _m: None
                  ) -> VerifyReport:
    """The sha256 of every file of the backup and of every backup it builds on, and of their manifests."""
    repository = Repository(repo)
    report = VerifyReport(backup_id)
    current: str | None = backup_id
    seen: set[str] = set()
    while current and current not in seen:
        seen.add(current)
        try:
            manifest, intact = repository.read(current)
        except NotFound:
            report.problems.append(f"{current}, which the chain needs, is missing")
            break
        if not intact:
            report.problems.append(f"{current}/manifest does not match its checksum")
        for entry, path in repository.iter_files(manifest):
            progress(f"checking {current}/{entry.name}")
            if not path.is_file():
                report.problems.append(f"{current}/{entry.name} is missing")
            elif path.stat().st_size != entry.size:
                report.problems.append(f"{current}/{entry.name} has {path.stat().st_size} bytes, the manifest says "
                                       f"{entry.size}")
            elif sha256_of(path) != entry.sha256:
                report.problems.append(f"{current}/{entry.name} does not match its sha256")
            else:
                report.checked.append(f"{current}/{entry.name}")
        current = manifest.parent
    return report


# -- prune ---------------------------------------------------------------------------------------


def _when(manifest: Manifest) -> datetime:
    return datetime.fromisoformat(manifest.created.replace("Z", "+00:00"))


def retained(manifests: list[Manifest], keep_last: int, keep_daily: int = 0, keep_weekly: int = 0) -> set[str]:
    """The ids a retention policy keeps (before chains are considered): the newest `keep_last`, the newest
    of each of the last `keep_daily` days and `keep_weekly` ISO weeks that have backups."""
    newest_first = sorted(manifests, key=lambda m: (m.created, m.id), reverse=True)
    keep = {m.id for m in newest_first[:keep_last]}
    buckets: list[tuple[int, Callable[[datetime], str]]] = [
        (keep_daily, lambda d: d.strftime("%Y-%m-%d")),
        (keep_weekly, lambda d: f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}")]
    for count, bucket in buckets:
        seen: list[str] = []
        for manifest in newest_first:
            key = bucket(_when(manifest))
            if key not in seen:
                seen.append(key)
                if len(seen) > count:
                    break
                keep.add(manifest.id)
    return keep


@dataclass
class PruneReport:
    vm: str
    kept: list[str]
    removed: list[str]
    consolidated: list[str]  # kept incrementals made self-contained because their ancestors went

    @property
    def message(self) -> str:
        text = f"{self.vm}: kept {len(self.kept)} backup(s), removed {len(self.removed)}"
        if self.consolidated:
            text += f"; made self-contained (their ancestors went): {', '.join(self.consolidated)}"
        return text


def _consolidate(repository: Repository, manifest: Manifest, progress: Progress) -> Manifest:
    """Rewrite an incremental's disks as full images (read through its chain) and its manifest to match."""
    folder = repository.folder(manifest.id)
    files: list[BackupFile] = []
    for entry in manifest.files:
        if entry.role != "disk" or entry.parent is None:
            files.append(entry)
            continue
        progress(f"making {manifest.id}/{entry.name} self-contained")
        path = folder / entry.name
        tmp = temp_path(path)
        try:
            qemu_img_convert(path, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            digest, size = sha256_of(tmp), tmp.stat().st_size
            os.replace(tmp, path)  # same data, now without a backing file
        finally:
            tmp.unlink(missing_ok=True)
        files.append(replace(entry, parent=None, size=size, sha256=digest))
    updated = replace(manifest, files=tuple(files), parent=None, kind="full", consolidated=True,
                      reason=manifest.reason + f"; made self-contained when {manifest.parent} was pruned")
    repository.rewrite(updated)
    return updated


def prune_backups(vm: str, *, keep_last: int, keep_daily: int = 0, keep_weekly: int = 0,
                  repo: str | Path | None = None, progress: Progress = lambda _m: None) -> PruneReport:
    if keep_last < 1:
        raise InvalidInput("--keep-last must be at least 1: pruning never removes a VM's newest backup",
                           field="keep_last")
    if keep_daily < 0 or keep_weekly < 0:
        raise InvalidInput("--keep-daily and --keep-weekly count days and weeks: 0 or more", field="keep_daily")
    repository = Repository(repo)
    manifests = repository.manifests(vm)
    if not manifests:
        raise NotFound(f"no backups of {vm!r} in {repository.root}")
    keep = retained(manifests, keep_last, keep_daily, keep_weekly)
    by_id = {m.id: m for m in manifests}
    consolidated = []
    # Oldest first: once a kept backup is self-contained, its kept descendants can still use it.
    for manifest in manifests:
        if manifest.id in keep and manifest.parent and manifest.parent not in keep:
            by_id[manifest.id] = _consolidate(repository, manifest, progress)
            consolidated.append(manifest.id)
    # Remove newest first: a crash half-way never leaves a kept backup without a parent.
    removed = []
    for manifest in reversed(manifests):
        if manifest.id not in keep:
            progress(f"removing {manifest.id}")
            repository.remove(manifest.id)
            removed.append(manifest.id)
    return PruneReport(vm, sorted(keep), removed, consolidated)


# -- cancel --------------------------------------------------------------------------------------


def cancel_backups(vm: str | None = None, *, repo: str | Path | None = None) -> list[str]:
    """Ask the running backups (of `vm`) to stop; each leaves nothing. Returns the ids asked."""
    repository = Repository(repo)
    asked = []
    for partial in repository.partials():
        if partial.alive and (vm is None or partial.vm == vm) and (partial.path / "writer.json").exists():
            (partial.path / "cancel").touch()
            asked.append(partial.backup_id)
    if not asked:
        raise NotFound("no backup is running" + (f" for {vm!r}" if vm else "") + f" in {repository.root}")
    return asked

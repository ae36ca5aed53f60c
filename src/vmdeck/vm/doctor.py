"""`vmdeck doctor`: find, and with --fix remove, what vmdeck made and a crash left behind (core layer).

Only things vmdeck can prove are its own are ever removed:
- volumes named in the journal (storage/journal.py) of an operation whose process is gone,
  when no VM uses them;
- temporary files named after a writer process that is gone (`.NAME.vmdeck-PID-START.part`);
- image build folders (`images/tiny-ARCH-XXXXXXXX`) no build holds the lock of;
- seed ISOs in data_dir()/seeds that no VM uses;
- the journal records themselves once settled;
- partial backups (a hidden folder in the backup repository) whose writer is gone: a backup that
  did not finish never has an entry, and its files go (vm.backup).
Volumes in vmdeck's pool that no VM uses but that no record ties to a failed operation (a
`delete --keep-disks` keeps them on purpose) are listed, never removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.paths import data_dir, iso_dir, pool_name
from vmdeck.storage.backup_repo import Repository
from vmdeck.storage.journal import JournalEntry, read_entries, temp_owner, token_alive
from vmdeck.storage.pool import delete_volume, refresh_pool
from vmdeck.storage.usage import image_usage

__all__ = ["Finding", "examine", "repair"]

# tempfile.TemporaryDirectory(prefix="tiny-ARCH-") in images/tiny.py: 8 characters from this set.
_BUILD_DIR = re.compile(r"^tiny-(?P<arch>[a-z0-9_]+)-[a-z0-9_]{8}$")
# A writer-less `.NAME.part` (uploads before temp files carried their writer) is stale after this.
_ANONYMOUS_TEMP_AGE = 3600.0


@dataclass(frozen=True)
class Finding:
    kind: str  # volume | temp-file | build-dir | seed | record | unused-volume | backup-partial
    path: str
    reason: str
    fixable: bool


def _used_paths(host: Host) -> set[str]:
    """Every file any VM (running config or saved config) has as a disk or CD source."""
    used: set[str] = set()
    for dom in host.conn.domains():
        with contextlib.suppress(NotFound):  # a VM deleted meanwhile uses nothing
            xmls = [dom.xml()]
            if dom.is_persistent() and dom.is_active():
                xmls.append(dom.xml(inactive=True))
            used.update(d.source for xml in xmls for d in parse_domain(xml).disks if d.source)
    # Images no disk names directly but a VM still reads: backing files of overlays, snapshot images.
    used.update(path for path, users in image_usage(host).users.items() if users)
    return used


def _pool_volumes(host: Host) -> dict[str, str]:
    """name -> path of every volume in vmdeck's pool ({} when the pool does not exist yet)."""
    try:
        pool = host.conn.pool(pool_name())
    except NotFound:
        return {}
    if not pool.is_active():
        return {}
    refresh_pool(pool)
    return dict(pool.volumes())


def _journal_findings(entries: Iterable[JournalEntry], volumes: dict[str, str], used: set[str],
                      in_flight: set[str]) -> list[Finding]:
    findings = []
    for entry in entries:
        if entry.alive:
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.started))
        why = f"made by a '{entry.operation} {entry.vm}' that did not finish (process {entry.pid}, {when})"
        for name in entry.volumes:
            path = volumes.get(name)
            if path is not None and path not in used and name not in in_flight:
                findings.append(Finding("volume", path, f"no VM uses it; {why}", True))
        for file in entry.files:
            if Path(file).exists() and file not in used:
                findings.append(Finding("seed", file, f"no VM uses it; {why}", True))
        findings.append(Finding("record", str(entry.path), f"journal record of '{entry.operation} {entry.vm}' "
                                f"(process {entry.pid}, {when}), which did not finish", True))
    return findings


def _temp_findings(folders: Iterable[Path]) -> list[Finding]:
    findings = []
    now = time.time()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            owner = temp_owner(path)
            if owner is None or not path.is_file():
                continue
            final, token = owner
            if token is None:
                age = now - path.stat().st_mtime
                if age < _ANONYMOUS_TEMP_AGE:
                    continue
                reason = f"partial {final}, untouched for {age / 60:.0f} min"
            elif token_alive(*token):
                continue  # an upload or build still running
            else:
                reason = f"partial {final} of process {token[0]}, which is gone"
            findings.append(Finding("temp-file", str(path), reason, True))
    return findings


def _build_lock_free(images: Path, arch: str) -> bool:
    lock = images / f".tiny-{arch}.lock"
    if not lock.exists():
        return True
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def _build_findings(images: Path) -> list[Finding]:
    findings: list[Finding] = []
    if not images.is_dir():
        return findings
    for path in sorted(images.iterdir()):
        match = _BUILD_DIR.match(path.name)
        if match and path.is_dir() and _build_lock_free(images, match.group("arch")):
            findings.append(Finding("build-dir", str(path), "work folder of an image build that did not finish",
                                    True))
    return findings


def _seed_findings(seeds: Path, used: set[str]) -> list[Finding]:
    if not seeds.is_dir():
        return []
    return [Finding("seed", str(p), "seed ISO that no VM uses (its VM was deleted)", True)
            for p in sorted(seeds.iterdir()) if p.is_file() and temp_owner(p) is None and str(p) not in used]


def _backup_findings(repo: Repository) -> list[Finding]:
    return [Finding("backup-partial", str(p.path), f"partial backup {p.backup_id}"
                    + (f" of {p.vm}" if p.vm else "") + ", whose process is gone: it never became a backup", True)
            for p in repo.partials() if not p.alive]


def examine(host: Host) -> list[Finding]:
    """Everything vmdeck-made that nothing uses, fixable first; changes nothing."""
    used = _used_paths(host)
    volumes = _pool_volumes(host)
    entries = read_entries()
    in_flight = {name for entry in entries if entry.alive for name in entry.volumes}
    findings = _journal_findings(entries, volumes, used, in_flight)
    claimed = {f.path for f in findings}
    findings += _temp_findings([iso_dir(), data_dir() / "images", data_dir() / "seeds", data_dir() / "journal"])
    findings += _build_findings(data_dir() / "images")
    findings += _backup_findings(Repository())
    findings += [f for f in _seed_findings(data_dir() / "seeds", used) if f.path not in claimed]
    for name, path in sorted(volumes.items()):
        if path not in used and path not in claimed and name not in in_flight and temp_owner(Path(path)) is None:
            findings.append(Finding("unused-volume", path, "no VM uses it, but nothing shows vmdeck left it by "
                                    "accident (delete --keep-disks keeps volumes): remove it by hand if unwanted",
                                    False))
    return findings


def repair(host: Host, findings: Iterable[Finding]) -> list[Finding]:
    """Remove the fixable findings (volumes first, records last); returns what was removed."""
    order = {"volume": 0, "seed": 1, "temp-file": 2, "build-dir": 3, "backup-partial": 3, "record": 4}
    removed = []
    for finding in sorted((f for f in findings if f.fixable), key=lambda f: order.get(f.kind, 9)):
        if finding.kind == "volume":
            delete_volume(host, finding.path)
        elif finding.kind == "build-dir":
            shutil.rmtree(finding.path, ignore_errors=True)
        elif finding.kind == "backup-partial":
            from vmdeck.vm.backup import settle_partial

            settle_partial(host, Path(finding.path))
        else:
            Path(finding.path).unlink(missing_ok=True)
        removed.append(finding)
    return removed

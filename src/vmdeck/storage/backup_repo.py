"""A backup repository: a folder of finished backups, each published whole by one rename (storage layer).

    REPO/
      web1-20261206-130405-1a2b/        one finished backup
        manifest                        first line "vmdeck-backup sha256=HEX", then the manifest's JSON
        disk-vda.qcow2                  the disk (a full image, or an incremental whose backing file is
                                        "../PARENT/disk-vda.qcow2": relative, so the folder can move)
        nvram.fd                        a UEFI VM's variable store
        seed-sdb.iso                    a cloud-init NoCloud seed
      .web1-20261206-...vmdeck-PID-START-xxxxxx.part/   a backup being written, or one a killed
                                        process left (`vmdeck doctor --fix` removes those)

The manifest names every file with its role, its parent in the chain, its size and sha256,
and the hash of the manifest itself sits in its first line: `verify` notices one flipped byte
anywhere. A folder with a final name always holds a complete backup (it was written aside and
renamed at the end); the repository's manifests are the catalogue's truth.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vmdeck.errors import Conflict, InvalidInput, NotFound
from vmdeck.paths import backup_dir
from vmdeck.storage.journal import temp_owner, temp_path, token_alive

__all__ = ["BackupFile", "Manifest", "Partial", "PartialInfo", "Repository", "sha256_of", "MANIFEST"]

MANIFEST = "manifest"
_HEADER = "vmdeck-backup sha256="
FORMAT = 1


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True)
class BackupFile:
    name: str  # the file's name inside the backup's folder
    role: str  # disk | nvram | seed | tpm
    size: int  # bytes of the file
    sha256: str
    target: str | None = None  # the disk's target (vda) for disks and seeds
    parent: str | None = None  # "PARENT-ID/disk-vda.qcow2": its backing file in the chain; None: self-contained
    virtual_size: int = 0  # what the guest sees (disks)
    source: str | None = None  # where it was on the host (the disk's image, the NVRAM file)


@dataclass(frozen=True)
class Manifest:
    id: str
    vm: str
    uuid: str
    project: str | None
    host: str
    created: str  # ISO 8601, UTC
    kind: str  # full | incremental
    parent: str | None  # the backup this incremental builds on
    checkpoint: str | None  # libvirt's checkpoint taken with it (the next incremental starts there)
    state: str  # the VM's state when it was taken
    quiesced: bool
    reason: str  # why full or incremental, in words
    domain_xml: str
    files: tuple[BackupFile, ...] = ()
    format: int = FORMAT
    consolidated: bool = field(default=False)  # an incremental made self-contained by a prune

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def disks(self) -> list[BackupFile]:
        return [f for f in self.files if f.role == "disk"]

    def file(self, role: str, target: str | None = None) -> BackupFile | None:
        return next((f for f in self.files if f.role == role and f.target == target), None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bytes"] = self.total_bytes
        return data

    def summary(self) -> dict[str, Any]:
        """Everything but the domain definition: what listings show."""
        return {k: v for k, v in self.to_dict().items() if k != "domain_xml"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        data = dict(data)
        data.pop("bytes", None)
        files = tuple(BackupFile(**f) for f in data.pop("files", []))
        return cls(**data, files=files)

    def encode(self) -> bytes:
        body = json.dumps(self.to_dict(), indent=1, sort_keys=True).encode()
        return f"{_HEADER}{hashlib.sha256(body).hexdigest()}\n".encode() + body


def decode_manifest(raw: bytes, where: str) -> tuple[Manifest, bool]:
    """(manifest, whether its hash matches); Conflict when it is no manifest at all."""
    header, _, body = raw.partition(b"\n")
    text = header.decode("ascii", "replace")
    try:
        data = json.loads(body)
        manifest = Manifest.from_dict(data)
    except (ValueError, TypeError) as err:
        raise Conflict(f"the manifest of backup {where} is unreadable: {err}") from err
    intact = text.startswith(_HEADER) and text[len(_HEADER):] == hashlib.sha256(body).hexdigest()
    return manifest, intact


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class PartialInfo:
    path: Path
    backup_id: str
    writer: tuple[int, int] | None  # (pid, start ticks) of the process writing it
    vm: str | None

    @property
    def alive(self) -> bool:
        return self.writer is not None and token_alive(*self.writer)


class Partial:
    """A backup being written: a hidden folder beside the finished ones, renamed into place at the end."""

    def __init__(self, repo: Repository, backup_id: str, path: Path) -> None:
        self.repo = repo
        self.backup_id = backup_id
        self.path = path

    def file(self, name: str) -> Path:
        return self.path / name

    def note(self, **facts: Any) -> None:
        """Facts for whoever finds this folder after a crash (`vmdeck doctor`): the VM, whether it was started."""
        current = self.facts()
        current.update(facts)
        _write_atomic(self.path / "writer.json", json.dumps(current).encode())

    def facts(self) -> dict[str, Any]:
        return read_facts(self.path)

    @property
    def cancel_requested(self) -> bool:
        return (self.path / "cancel").exists()

    def clear(self) -> None:
        """Remove what a failed attempt wrote (the folder and its notes stay)."""
        for child in self.path.iterdir():
            if child.name != "writer.json" and child.name != "cancel":
                child.unlink()

    def publish(self, manifest: Manifest) -> Path:
        """Write the manifest, flush everything, and rename the folder to its final name."""
        for child in self.path.iterdir():
            if child.name in ("writer.json", "cancel"):
                child.unlink()
                continue
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
        _write_atomic(self.path / MANIFEST, manifest.encode())
        _fsync_dir(self.path)
        final = self.repo.root / self.backup_id
        os.rename(self.path, final)  # the moment the backup exists
        _fsync_dir(self.repo.root)
        return final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def read_facts(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "writer.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class Repository:
    """One backup repository (a local folder or a mounted share)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else backup_dir()

    def ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InvalidInput(f"cannot use {self.root} as a backup repository: {err.strerror}", field="repo") from err
        if not os.access(self.root, os.W_OK):
            raise InvalidInput(f"backup repository {self.root} is not writable", field="repo")

    def check_reachable(self) -> None:
        """InvalidInput when QEMU could not write into the repository."""
        # QEMU (libvirt's unprivileged qemu user) writes the disk files itself: every folder on the way
        # must let others pass (o+x), though none needs to be listable.
        for folder in (self.root.resolve(), *self.root.resolve().parents):
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                raise InvalidInput(f"QEMU cannot reach backup repository {self.root}: {folder} does not let other "
                                   "users pass (chmod o+x it, or choose another --repo)", field="repo")

    # reading
    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file())

    def folder(self, backup_id: str) -> Path:
        if "/" in backup_id or backup_id.startswith(".") or not backup_id:
            raise InvalidInput(f"{backup_id!r} is not a backup id", field="id")
        return self.root / backup_id

    def read(self, backup_id: str) -> tuple[Manifest, bool]:
        """(manifest, intact): NotFound when the repository has no such backup."""
        path = self.folder(backup_id) / MANIFEST
        try:
            raw = path.read_bytes()
        except FileNotFoundError as err:
            raise NotFound(f"no backup {backup_id!r} in {self.root}") from err
        return decode_manifest(raw, backup_id)

    def load(self, backup_id: str) -> Manifest:
        return self.read(backup_id)[0]

    def manifests(self, vm: str | None = None) -> list[Manifest]:
        """Every readable backup (of `vm`), oldest first."""
        found = []
        for backup_id in self.ids():
            with contextlib.suppress(Conflict, NotFound):
                manifest = self.load(backup_id)
                if vm is None or manifest.vm == vm:
                    found.append(manifest)
        return sorted(found, key=lambda m: (m.created, m.id))

    def latest(self, vm: str) -> Manifest | None:
        found = self.manifests(vm)
        return found[-1] if found else None

    def chain(self, manifest: Manifest) -> list[Manifest]:
        """The backup and its ancestors, newest first; NotFound when one is missing."""
        chain = [manifest]
        while chain[-1].parent:
            parent = chain[-1].parent
            if any(m.id == parent for m in chain):
                raise Conflict(f"backup {manifest.id} has a loop in its chain at {parent}")
            try:
                chain.append(self.load(parent))
            except NotFound as err:
                raise NotFound(f"backup {manifest.id} needs {parent}, which is not in {self.root}") from err
        return chain

    # writing
    def begin(self, backup_id: str) -> Partial:
        self.ensure()
        path = temp_path(self.root / backup_id)
        path.mkdir()
        path.chmod(0o711)  # QEMU writes into it; nobody else may list it
        return Partial(self, backup_id, path)

    def partials(self) -> list[PartialInfo]:
        """Backups being written, and those a killed process left."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.iterdir()):
            owner = temp_owner(path)
            if owner is None or not path.is_dir():
                continue
            facts = read_facts(path)
            found.append(PartialInfo(path, owner[0], owner[1], facts.get("vm")))
        return found

    def remove(self, backup_id: str) -> None:
        """Delete a finished backup: hidden first by a rename (it is gone at once), then its files."""
        folder = self.folder(backup_id)
        if not folder.is_dir():
            raise NotFound(f"no backup {backup_id!r} in {self.root}")
        hidden = temp_path(folder)
        os.rename(folder, hidden)
        shutil.rmtree(hidden, ignore_errors=True)

    def rewrite(self, manifest: Manifest) -> None:
        """Replace a finished backup's manifest (one atomic rename: the old one or the new one, never half)."""
        _write_atomic(self.folder(manifest.id) / MANIFEST, manifest.encode())

    def iter_files(self, manifest: Manifest) -> Iterator[tuple[BackupFile, Path]]:
        folder = self.folder(manifest.id)
        for entry in manifest.files:
            yield entry, folder / entry.name


def with_files(manifest: Manifest, files: tuple[BackupFile, ...], **changes: Any) -> Manifest:
    return replace(manifest, files=files, **changes)

"""`vmdeck export` / `vmdeck import-backup`: one portable file holding a full backup (core layer).

The file is a tar of one backup folder (manifest and files, as in a repository). Export takes
a full backup into a private temporary repository and writes the tar aside, renamed into place
at the end; import checks every file against the manifest before the backup joins the
repository (published by rename, like a backup taken here), then restores it.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmdeck.errors import Conflict, InvalidInput
from vmdeck.host.connection import Host
from vmdeck.storage.backup_repo import MANIFEST, Repository, decode_manifest, sha256_of
from vmdeck.storage.journal import temp_path
from vmdeck.vm.backup import create_backup
from vmdeck.vm.backup_restore import RestoreResult, restore_backup

__all__ = ["export_vm", "import_backup", "ImportResult"]

Progress = Callable[[str], None]


def export_vm(host: Host, name: str, output: str | Path, *, progress: Progress = lambda _m: None) -> str:
    """A full backup of `name` as one file at `output`; returns its message."""
    dest = Path(output)
    if dest.is_dir():
        raise InvalidInput(f"{dest} is a folder: name the file to write", field="output")
    if not dest.parent.is_dir():
        raise InvalidInput(f"no folder {dest.parent} to write {dest.name} in", field="output")
    with tempfile.TemporaryDirectory(prefix=".vmdeck-export-", dir=dest.parent) as tmp:
        Path(tmp).chmod(0o711)  # QEMU's user writes the disk files into it
        result = create_backup(host, name, repo=tmp, full=True, chain=False, progress=progress)
        partial = temp_path(dest)
        try:
            progress(f"writing {dest}")
            with tarfile.open(partial, "w") as tar:
                tar.add(Path(tmp) / result.id, arcname=result.id)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
    return f"{name} exported to {dest} (a full backup, {dest.stat().st_size / 2**20:.1f} MiB)"


@dataclass(frozen=True)
class ImportResult:
    backup: str
    restore: RestoreResult | None
    message: str


def import_backup(host: Host, file: str | Path, *, repo: str | Path | None = None, as_name: str | None = None,
                  restore: bool = True, progress: Progress = lambda _m: None) -> ImportResult:
    source = Path(file)
    if not source.is_file():
        raise InvalidInput(f"no file {source}", field="file")
    repository = Repository(repo)
    repository.ensure()
    try:
        tar = tarfile.open(source, "r")
    except tarfile.TarError as err:
        raise InvalidInput(f"{source} is not a vmdeck export: {err}", field="file") from err
    with tar:
        tops = {Path(m.name).parts[0] for m in tar.getmembers() if m.name not in ("", ".")}
        if len(tops) != 1:
            raise InvalidInput(f"{source} is not a vmdeck export (it must hold exactly one backup folder)",
                               field="file")
        backup_id = tops.pop()
        if (repository.root / backup_id).exists():
            raise Conflict(f"backup {backup_id} is already in {repository.root}")
        partial = repository.begin(backup_id)
        try:
            # The "data" filter refuses absolute paths, links out of the folder and device files.
            tar.extractall(partial.path, filter="data")
            folder = partial.path / backup_id
            manifest, intact = decode_manifest((folder / MANIFEST).read_bytes(), backup_id)
            if not intact or manifest.id != backup_id or manifest.parent:
                raise InvalidInput(f"{source}: its manifest is damaged or not a full backup", field="file")
            for entry in manifest.files:
                if sha256_of(folder / entry.name) != entry.sha256:
                    raise InvalidInput(f"{source}: {entry.name} does not match its sha256", field="file")
            for child in folder.iterdir():
                os.rename(child, partial.path / child.name)
            folder.rmdir()
            os.rename(partial.path, repository.root / backup_id)
        except BaseException:
            shutil.rmtree(partial.path, ignore_errors=True)
            raise
    restored = restore_backup(host, backup_id, repo=repository.root, as_name=as_name, progress=progress) \
        if restore else None
    message = f"backup {backup_id} imported into {repository.root}"
    return ImportResult(backup_id, restored, message + (f"; {restored.message}" if restored else ""))

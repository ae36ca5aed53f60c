"""Restore a backup: as a new VM, or in place of the VM it was taken from (core layer).

Each disk is written into vmdeck's pool by `qemu-img convert`, which reads an incremental
through its chain in the repository: the restored disk is one self-contained image. Nothing
but the repository is needed, so a deleted VM comes back too.

- As a new VM (`--as NEW`): a clone's identity — new UUID and MAC addresses (libvirt makes
  them), its own NVRAM copy, and a new cloud-init seed with a new instance-id.
- In place: the backed-up definition (same name, UUID, MACs) on the restored files. Refused
  while the VM runs unless `force`, which powers it off first. The new files are complete
  before the old VM is deleted, so a failure half-way loses nothing.

Onto a host that does not share this machine's files (any host but this one: `--host H`), the
same files go through libvirt's storage streams, as in an offline migration: each disk is made
self-contained here (`qemu-img convert` into a temporary file; a full backup's file is one already)
and uploaded into H's pool, the seed likewise, the NVRAM into H's NVRAM folder (vm.host_files).

Restored VMs have no snapshots (a backup holds the present state only) and no checkpoint: the
next backup of the VM starts a new full chain, and says so.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmdeck.domxml.backup import new_vm_xml, restored_domain_xml
from vmdeck.domxml.snapshots import NVRAM_DIR
from vmdeck.errors import Conflict, HostError, InvalidInput, StateError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.paths import pool_dir
from vmdeck.spec.models import check_name
from vmdeck.storage.backup_repo import Manifest, Repository
from vmdeck.storage.journal import Journal
from vmdeck.storage.pool import delete_volume, ensure_pool, refresh_pool
from vmdeck.vm.backup_tpm import restore_tpm_state
from vmdeck.vm.host_files import delete_in_folder, upload_file, upload_into_folder
from vmdeck.vm.seeds import reissue_seed
from vmdeck.vm.state import current_state

__all__ = ["RestoreResult", "restore_backup", "qemu_img_convert"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RestoreResult:
    backup: str
    vm: str
    in_place: bool
    disks: dict[str, str]
    message: str


def qemu_img_convert(source: Path, dest: Path) -> None:
    """A self-contained qcow2 v3 copy of `source` read through its backing chain (sparse: zeros stay holes)."""
    try:
        done = subprocess.run(["qemu-img", "convert", "-O", "qcow2", "-o", "compat=1.1", str(source), str(dest)],
                              capture_output=True, text=True)
    except FileNotFoundError as err:
        raise HostError("qemu-img is not installed (Debian package qemu-utils)") from err
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise VmdeckError(f"restore {source.name}: {detail[-1] if detail else 'qemu-img failed'}")


class _Target:
    """Where the restored files go: this machine's pool and NVRAM folder, written directly, or another
    host's, reached through libvirt's storage streams. `made` lists what was written, for the undo."""

    def __init__(self, host: Host, journal: Journal, scratch: Path) -> None:
        self.host = host
        self.local = host.is_local
        self.journal = journal
        self.scratch = scratch  # a local temporary folder for what is built before an upload
        self.made: list[str] = []  # disks and seeds (the new VM owns them)
        self.nvram: str | None = None

    def disk(self, source: Path, name: str, self_contained: bool) -> str:
        if self.local:
            dest = pool_dir() / name
            self.journal.volume(name)
            self.made.append(str(dest))
            qemu_img_convert(source, dest)
            return str(dest)
        if not self_contained:  # an incremental: read through its chain into one image first
            flat = self.scratch / name
            qemu_img_convert(source, flat)
            source = flat
        path = upload_file(self.host, source, name)
        self.made.append(path)
        with contextlib.suppress(OSError):
            (self.scratch / name).unlink()
        return path

    def seed(self, source: Path, name: str) -> str:
        if self.local:
            dest = pool_dir() / name
            self.journal.file(dest)
            shutil.copyfile(source, dest)
            self.made.append(str(dest))
            return str(dest)
        path = upload_file(self.host, source, name)
        self.made.append(path)
        return path

    def new_seed(self, source: Path, vm: str) -> str:
        """A copy of the seed with a new instance-id (a restore as a new VM is a new instance)."""
        name = f"{vm}-seed.iso"
        if self.local:
            out = str(reissue_seed(str(source), vm, pool_dir() / name))
            self.made.append(out)
            refresh_pool(ensure_pool(self.host))  # retries while another client's volume job runs
            return out
        return self.seed(reissue_seed(str(source), vm, self.scratch / name), name)

    def put_nvram(self, source: Path, vm: str) -> str:
        dest = f"{NVRAM_DIR}/{vm}_VARS.fd"
        if self.local:
            shutil.copyfile(source, dest)
        else:
            upload_into_folder(self.host, source, dest)
            self.nvram = dest
        return dest

    def undo(self) -> None:
        for path in self.made:
            with contextlib.suppress(Exception):
                delete_volume(self.host, path)
            if self.local:
                with contextlib.suppress(OSError):
                    Path(path).unlink(missing_ok=True)
        if self.nvram:
            delete_in_folder(self.host, self.nvram)


def _restore_disks(target: _Target, repo: Repository, manifest: Manifest, vm: str,
                   progress: Progress) -> dict[str, str]:
    """target -> the restored disk on the target host."""
    disks: dict[str, str] = {}
    folder = repo.folder(manifest.id)
    where = "" if target.local else f" onto {target.host.uri}"
    for entry in manifest.disks():
        name = f"{vm}-{entry.target}-r{secrets.token_hex(3)}.qcow2"
        progress(f"restoring {entry.target} ({entry.virtual_size / 2**30:.1f} GiB disk){where}")
        disks[entry.target or ""] = target.disk(folder / entry.name, name, entry.parent is None)
    refresh_pool(ensure_pool(target.host))  # retries while another client's volume job runs in the pool
    return disks


def restore_backup(host: Host, backup_id: str, *, repo: str | Path | None = None, as_name: str | None = None,
                   force: bool = False, progress: Progress = lambda _m: None) -> RestoreResult:
    """Restore backup `backup_id` onto `host` (this machine, or any host libvirt reaches): as a new VM
    `as_name`, or in place of the VM it was taken of."""
    repository = Repository(repo)
    manifest, intact = repository.read(backup_id)
    if not intact:
        raise Conflict(f"backup {backup_id}'s manifest does not match its checksum: run `vmdeck backup verify`")
    repository.chain(manifest)  # NotFound now, not half-way, when a backup it builds on is missing
    vm = as_name or manifest.vm
    in_place = as_name is None or as_name == manifest.vm
    if not in_place:
        try:
            check_name(vm)
        except ValueError as err:
            raise InvalidInput(str(err), field="as") from err
        if host.exists(vm):
            raise Conflict(f"a VM named {vm!r} already exists: pick another --as, or restore in place")
    elif host.exists(vm):
        state = current_state(host.lookup(vm))
        if state.live and not force:
            raise StateError(vm, state, "shut off (or use --force, which powers it off and replaces it)",
                             "restore a backup over")
    replaced = False
    folder = repository.folder(manifest.id)
    seed_files = {f.target or "": folder / f.name for f in manifest.files if f.role == "seed"}
    nvram_entry = manifest.file("nvram")
    tpm_entry = manifest.file("tpm")
    with Journal("restore", vm) as journal, tempfile.TemporaryDirectory(prefix="vmdeck-restore-") as scratch:
        target = _Target(host, journal, Path(scratch))
        try:
            disks = _restore_disks(target, repository, manifest, vm, progress)
            if in_place:
                seeds = {t: target.seed(seed, f"{vm}-seed-r{secrets.token_hex(3)}.iso")
                         for t, seed in seed_files.items()}
                if host.exists(vm):
                    from vmdeck.vm.lifecycle import delete

                    progress(f"replacing {vm} (its present disks are deleted)")
                    delete(host, vm, force=True)
                    replaced = True
                nvram = target.put_nvram(folder / nvram_entry.name, vm) if nvram_entry else None
                xml = restored_domain_xml(manifest.domain_xml, disks, seeds, target.made, nvram, manifest.id)
            else:
                seeds = {t: target.new_seed(seed, vm) for t, seed in seed_files.items()}
                nvram = target.put_nvram(folder / nvram_entry.name, vm) if nvram_entry else None
                xml = new_vm_xml(manifest.domain_xml, manifest.vm, vm, disks, seeds, target.made, nvram)
            refresh_pool(ensure_pool(host))
            defined = host.conn.define(xml, context=f"define {vm}")
            if tpm_entry:
                progress("restoring the TPM state")
                try:
                    restore_tpm_state(host, folder / tpm_entry.name, defined.uuid())
                except BaseException:
                    with contextlib.suppress(VmdeckError):
                        defined.undefine()
                    raise
        except BaseException:
            if replaced:  # the old VM is gone: the restored files are all there is, keep them
                journal.close()
                raise
            target.undo()
            journal.close()
            raise
    how = "in place" if in_place else f"as a new VM (new UUID, MAC addresses{', cloud-init instance-id' if seed_files else ''})"
    where = "" if host.is_local else f" on {host.uri}"
    return RestoreResult(backup_id, vm, in_place, disks,
                         f"backup {backup_id} restored {how}: {vm} ({len(disks)} disk(s)){where}, shut off")

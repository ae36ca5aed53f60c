"""Restore a backup: as a new VM, or in place of the VM it was taken from (core layer).

Each disk is written into vmdeck's pool by `qemu-img convert`, which reads an incremental
through its chain in the repository: the restored disk is one self-contained image. Nothing
but the repository is needed, so a deleted VM comes back too.

- As a new VM (`--as NEW`): a clone's identity — new UUID and MAC addresses (libvirt makes
  them), its own NVRAM copy, and a new cloud-init seed with a new instance-id.
- In place: the backed-up definition (same name, UUID, MACs) on the restored files. Refused
  while the VM runs unless `force`, which powers it off first. The new files are complete
  before the old VM is deleted, so a failure half-way loses nothing.

Restored VMs have no snapshots (a backup holds the present state only) and no checkpoint: the
next backup of the VM starts a new full chain, and says so.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
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
from vmdeck.vm.clone import _reissue_seed
from vmdeck.vm.state import LIVE_STATES, current_state

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


def _restore_files(host: Host, repo: Repository, manifest: Manifest, vm: str, journal: Journal,
                   made: list[str], progress: Progress) -> tuple[dict[str, str], dict[str, Path]]:
    """(target -> restored disk in the pool, target -> the seed in the repository)."""
    pool = ensure_pool(host)
    disks: dict[str, str] = {}
    folder = repo.folder(manifest.id)
    for entry in manifest.disks():
        name = f"{vm}-{entry.target}-r{secrets.token_hex(3)}.qcow2"
        dest = pool_dir() / name
        journal.volume(name)
        progress(f"restoring {entry.target} ({entry.virtual_size / 2**30:.1f} GiB disk)")
        made.append(str(dest))
        qemu_img_convert(folder / entry.name, dest)
        disks[entry.target or ""] = str(dest)
    refresh_pool(pool)  # retries while another client's volume job runs in the pool
    seeds = {f.target or "": folder / f.name for f in manifest.files if f.role == "seed"}
    return disks, seeds


def restore_backup(host: Host, backup_id: str, *, repo: str | Path | None = None, as_name: str | None = None,
                   force: bool = False, progress: Progress = lambda _m: None) -> RestoreResult:
    if not host.is_local:
        raise HostError(f"restoring needs the target host to be this machine (qemu-img writes the pool): {host.uri}")
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
        if state in LIVE_STATES and not force:
            raise StateError(vm, state, "shut off (or use --force, which powers it off and replaces it)",
                             "restore a backup over")
    made: list[str] = []
    replaced = False
    with Journal("restore", vm) as journal:
        try:
            disks, seed_files = _restore_files(host, repository, manifest, vm, journal, made, progress)
            nvram_entry = manifest.file("nvram")
            nvram_src = repository.folder(manifest.id) / nvram_entry.name if nvram_entry else None
            if in_place:
                seeds: dict[str, str] = {}
                for target, seed in seed_files.items():
                    dest = pool_dir() / f"{vm}-seed-r{secrets.token_hex(3)}.iso"
                    journal.file(dest)
                    shutil.copyfile(seed, dest)
                    made.append(str(dest))
                    seeds[target] = str(dest)
                if host.exists(vm):
                    from vmdeck.vm.lifecycle import delete

                    progress(f"replacing {vm} (its present disks are deleted)")
                    delete(host, vm, force=True)
                    replaced = True
                nvram = f"{NVRAM_DIR}/{vm}_VARS.fd" if nvram_src else None
                if nvram_src and nvram:
                    shutil.copyfile(nvram_src, nvram)
                xml = restored_domain_xml(manifest.domain_xml, disks, seeds, made, nvram, manifest.id)
            else:
                seeds = {}
                for target, seed in seed_files.items():
                    seeds[target] = _reissue_seed(host, vm, str(seed))
                    made.append(seeds[target])
                nvram = f"{NVRAM_DIR}/{vm}_VARS.fd" if nvram_src else None
                if nvram_src and nvram:
                    shutil.copyfile(nvram_src, nvram)
                xml = new_vm_xml(manifest.domain_xml, manifest.vm, vm, disks, seeds, made, nvram)
            refresh_pool(ensure_pool(host))
            host.conn.define(xml, context=f"define {vm}")
        except BaseException:
            if replaced:  # the old VM is gone: the restored files are all there is, keep them
                journal.close()
                raise
            for path in made:
                with contextlib.suppress(Exception):
                    delete_volume(host, path)
                with contextlib.suppress(OSError):
                    Path(path).unlink(missing_ok=True)
            journal.close()
            raise
    how = "in place" if in_place else f"as a new VM (new UUID, MAC addresses{', cloud-init instance-id' if seed_files else ''})"
    return RestoreResult(backup_id, vm, in_place, disks,
                         f"backup {backup_id} restored {how}: {vm} ({len(disks)} disk(s)), shut off")

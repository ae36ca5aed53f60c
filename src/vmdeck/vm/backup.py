"""Back up a VM into a repository: libvirt's push-mode backup job, full or incremental (core layer).

- Running and paused VMs: libvirt's backup API. A backup takes a checkpoint (a dirty bitmap on
  each disk); the next one copies only the clusters changed since it, into a qcow2 whose backing
  file libvirt sets to the live disk and vmdeck rebases (`qemu-img rebase -u`) onto the previous
  backup's file, relative, so the repository can move.
- Shut-off VMs: started *paused* for the backup (the guest never runs) and powered off again.
  Chosen over reading the image with qemu-img because it is the same job, the same checkpoints
  and therefore the same incrementals as for a running VM; libvirt refuses checkpoints on an
  inactive domain, and a bitmap maintained by hand would be a second chain logic to get right.
- A full backup reads every disk through its whole backing chain (snapshots, linked clones,
  base images): the result is self-contained.
- A new full chain starts whenever the old one cannot continue, and the result says why: no
  earlier backup, --full, another VM under the same name (re-created or restored), the
  checkpoint gone (migration, restore, undefine), the disks changed, or the disk's bitmap gone
  (a snapshot revert or a clone put the VM on an image made outside libvirt).
- A VM on another host (the registry's) is backed up there: its QEMU writes the disk files, so the
  repository must be a share mounted at the same path on both hosts (checked once the job ends);
  NVRAM, TPM state and seed come through libvirt's storage streams (vm.host_files). After a
  migration the chain starts again, and the reason names the move.
- Everything is written into a hidden folder and renamed into place at the end
  (storage.backup_repo): a failed, cancelled or killed backup leaves no entry.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vmdeck.domxml.backup import backup_xml, checkpoint_xml
from vmdeck.domxml.parse import DiskView, parse_domain
from vmdeck.domxml.snapshots import nvram_path
from vmdeck.domxml.tpm import emulated_tpm_version
from vmdeck.errors import Conflict, GuestError, HostError, InvalidInput, NotFound, StateError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Domain
from vmdeck.storage.backup_repo import BackupFile, Manifest, Partial, Repository, sha256_of
from vmdeck.storage.images import image_info, qemu_img_rebase_unsafe, read_backing
from vmdeck.vm.backup_tpm import save_tpm_state
from vmdeck.vm.host_files import download_file, volume_format
from vmdeck.vm.project import domain_project
from vmdeck.vm.seeds import is_seed
from vmdeck.vm.snapshot_ops import config_xml
from vmdeck.vm.state import VmState, current_state

__all__ = ["BackupResult", "create_backup", "settle_partial", "estimate_bytes", "Progress", "BytesProgress",
           "CHECKPOINT_PREFIX"]

Progress = Callable[[str], None]
BytesProgress = Callable[[int, int], None]
CHECKPOINT_PREFIX = "vmdeck-"
# A backup job waits on itself, not on a clock: this only bounds a job that stopped moving entirely.
STALL_TIMEOUT = 600.0
_POLL = 0.25
_ISO_HEAD = 17 * 2048  # up to the primary volume descriptor, which holds the label


@dataclass(frozen=True)
class BackupResult:
    id: str
    vm: str
    kind: str
    reason: str
    bytes: int
    repo: str
    message: str


class _ChainBroken(Exception):
    """The incremental could not start: libvirt's text says why."""


def _bitmap_ready(host: Host, disk: DiskView) -> bool:
    """Whether the disk can hold the dirty bitmaps incrementals need: a qcow2 v3 image (read from its
    header here, or as libvirt reads it on another host)."""
    if disk.format != "qcow2":
        return False
    if host.is_local:
        return _qcow2_version(disk.source or "") == 3
    fmt, compat = volume_format(host, disk.source or "")
    return fmt == "qcow2" and compat not in ("", "0.10")


def _qcow2_version(path: str) -> int:
    """2 or 3 from the qcow2 header; 0 for anything else. Only v3 holds the bitmaps incrementals need."""
    try:
        with open(path, "rb") as image:
            header = image.read(8)
    except OSError:
        return 0
    return int.from_bytes(header[4:8], "big") if header[:4] == b"QFI\xfb" else 0


def _new_id(vm: str) -> str:
    return f"{vm}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _disks(view_disks: tuple[DiskView, ...]) -> tuple[list[DiskView], list[str]]:
    """(disks to back up: writable images; targets left out: CD media and read-only disks)."""
    chosen, skipped = [], []
    for disk in view_disks:
        if not disk.source:
            continue
        if disk.device == "disk" and not disk.readonly:
            chosen.append(disk)
        else:
            skipped.append(disk.target)
    return chosen, skipped


def _decide(dom: Domain, uuid: str, disks: list[DiskView], last: Manifest | None, full: bool,
            checkpoints: list[str], uri: str = "") -> tuple[Manifest | None, str]:
    """(the backup to continue from, or None for a full one; why, in words)."""
    if full:
        return None, "full backup: asked for with --full"
    if last is None:
        return None, "full backup: the first of this VM in this repository"
    if last.uuid != uuid:
        return None, (f"full backup, a new chain: the last backup ({last.id}) is of another VM of the same "
                      "name (deleted and re-created, or restored as a new VM)")
    if last.checkpoint and last.checkpoint not in checkpoints and uri and last.host and last.host != uri:
        return None, (f"full backup, a new chain: {dom.name} moved from {last.host} to {uri} since the last "
                      f"backup ({last.id}), and libvirt keeps no checkpoint across a migration")
    if not last.checkpoint or last.checkpoint not in checkpoints:
        return None, (f"full backup, a new chain: the checkpoint of the last backup ({last.id}) is gone from "
                      f"{dom.name} (after a migration, a restore or a redefinition libvirt keeps none)")
    if sorted(d.target for d in disks) != sorted(f.target or "" for f in last.disks()):
        return None, f"full backup, a new chain: {dom.name}'s disks changed since the last backup ({last.id})"
    return last, f"incremental: the changes since {last.id}"


def _freeze(dom: Domain) -> None:
    try:
        dom.agent_command('{"execute":"guest-fsfreeze-freeze"}', 60, context="freeze filesystems")
    except VmdeckError as err:
        raise GuestError(f"cannot quiesce VM {dom.name!r} (its guest agent must answer): {err}") from err


def _thaw(dom: Domain) -> None:
    with contextlib.suppress(VmdeckError):
        dom.agent_command('{"execute":"guest-fsfreeze-thaw"}', 60, context="thaw filesystems")


def _wait_job(dom: Domain, partial: Partial, progress: Progress, on_bytes: BytesProgress | None) -> None:
    """Follow the backup job to its end, reporting bytes; a cancel request aborts it."""
    last_report = 0.0
    last_done, moved = -1, time.monotonic()
    while True:
        phase, done, total, error = dom.backup_job()
        if phase != "running":
            break
        if partial.cancel_requested:
            dom.abort_job()
            _wait_job_gone(dom)
            raise Conflict(f"backup of {dom.name} cancelled: nothing was kept")
        if done != last_done:
            last_done, moved = done, time.monotonic()
        elif time.monotonic() - moved > STALL_TIMEOUT:
            dom.abort_job()
            raise HostError(f"backup of {dom.name} made no progress for {STALL_TIMEOUT:.0f} s: cancelled")
        if on_bytes:
            on_bytes(done, total)
        if time.monotonic() - last_report > 1.0 and total:
            progress(f"copied {done / 2**20:.0f} MiB of {total / 2**20:.0f} MiB")
            partial.note(done=done, total=total)  # for `backup list` and the API while it runs
            last_report = time.monotonic()
        time.sleep(_POLL)
    if phase == "cancelled":
        raise Conflict(f"the backup job of {dom.name} was cancelled: nothing was kept")
    if phase == "failed":
        raise VmdeckError(f"the backup job of {dom.name} failed: {error or 'libvirt gave no reason'}")
    if on_bytes and total:
        on_bytes(total, total)


def _wait_job_gone(dom: Domain, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(VmdeckError):
            if dom.backup_job()[0] != "running":
                return
        time.sleep(_POLL)


def _run_job(dom: Domain, partial: Partial, disks: list[DiskView], skipped: list[str], since: str | None,
             checkpoint: str | None, quiesce: bool, progress: Progress, on_bytes: BytesProgress | None) -> None:
    targets = {d.target: str(partial.file(f"disk-{d.target}.qcow2")) for d in disks}
    job = backup_xml(targets, skipped, since)
    point = checkpoint_xml(checkpoint, list(targets), skipped) if checkpoint else None
    if quiesce:
        progress("freezing the guest's filesystems")
        _freeze(dom)
    try:
        try:
            dom.backup_begin(job, point)
        except VmdeckError as err:
            if since:
                raise _ChainBroken(err.libvirt_text or str(err)) from err
            raise
    finally:
        if quiesce:
            _thaw(dom)  # the job copies the point in time it started at: the guest may go on at once
    try:
        _wait_job(dom, partial, progress, on_bytes)
    except BaseException:
        with contextlib.suppress(VmdeckError):
            dom.abort_job()
        _wait_job_gone(dom)
        raise


def _drop_checkpoints(dom: Domain, keep: str | None) -> None:
    """Delete vmdeck's checkpoints but `keep` (their bitmaps cost writes); metadata only if the bitmap is gone."""
    for name in dom.checkpoint_names():
        if name == keep or not name.startswith(CHECKPOINT_PREFIX):
            continue
        try:
            dom.delete_checkpoint(name)
        except VmdeckError:
            with contextlib.suppress(VmdeckError):
                dom.delete_checkpoint(name, metadata_only=True)


def _extra_files(host: Host, partial: Partial, config: str, view_disks: tuple[DiskView, ...], uuid: str
                 ) -> list[tuple[str, str, str | None]]:
    """Copy the NVRAM, the TPM state and the cloud-init seeds; (file name, role, target) of each. On another
    host they come through libvirt's storage streams (vm.host_files)."""
    made: list[tuple[str, str, str | None]] = []
    tpm_version = emulated_tpm_version(config)
    if tpm_version and save_tpm_state(host, uuid, tpm_version, partial.file("tpm.tar")):
        made.append(("tpm.tar", "tpm", None))
    nvram = nvram_path(config)
    if nvram and host.is_local and Path(nvram).exists():
        shutil.copyfile(nvram, partial.file("nvram.fd"))
        made.append(("nvram.fd", "nvram", None))
    elif nvram and not host.is_local:
        with contextlib.suppress(NotFound):  # none yet: libvirt makes it at the VM's first start
            download_file(host, nvram, partial.file("nvram.fd"))
            made.append(("nvram.fd", "nvram", None))
    for disk in view_disks:
        if disk.device != "cdrom" or not disk.source:
            continue
        name = f"seed-{disk.target}.iso"
        if host.is_local:
            if is_seed(disk.source):
                shutil.copyfile(disk.source, partial.file(name))
                made.append((name, "seed", disk.target))
            continue
        with contextlib.suppress(NotFound):  # media outside every pool there: not vmdeck's seed
            download_file(host, disk.source, partial.file(name), length=_ISO_HEAD)
            if is_seed(str(partial.file(name))):
                download_file(host, disk.source, partial.file(name))
                made.append((name, "seed", disk.target))
            else:
                partial.file(name).unlink()
    return made


def _allocated(path: str) -> int:
    """Bytes the image and its backing files take on disk: what a full backup copies at most."""
    total = 0
    current: str | None = path
    seen: set[str] = set()
    while current and current not in seen and Path(current).exists():
        seen.add(current)
        total += Path(current).stat().st_blocks * 512
        current = read_backing(current)
    return total


def _capacity(host: Host, dom: Domain, disk: DiskView) -> int:
    try:
        return host.conn.volume_at(disk.source or "").info()[0]
    except VmdeckError:  # not in a pool there
        return dom.block_capacity(disk.target)


def estimate_bytes(host: Host, name: str, *, repo: str | Path | None = None) -> int:
    """What the next backup of `name` would add to the repository, for a quota check before it starts:
    the data written since the last checkpoint when an incremental of a running VM follows, else every
    allocated byte of its disks' chains."""
    dom = host.lookup(name)
    state = current_state(dom)
    view = parse_domain(dom.xml() if state.live else config_xml(dom))
    disks, _skipped = _disks(view.disks)
    last = Repository(repo).latest(name)
    if state.live and last is not None and last.checkpoint:
        parent, _why = _decide(dom, dom.uuid(), disks, last, False, dom.checkpoint_names(), host.uri)
        if parent is not None and parent.checkpoint:
            with contextlib.suppress(VmdeckError):
                return dom.checkpoint_dirty_bytes(parent.checkpoint)
    if not host.is_local:  # the chain's files are not readable here: the disks' size bounds a full backup
        return sum(_capacity(host, dom, d) for d in disks)
    return sum(_allocated(d.source or "") for d in disks)


def create_backup(host: Host, name: str, *, repo: str | Path | None = None, full: bool = False,
                  quiesce: bool = False, progress: Progress = lambda _m: None,
                  on_bytes: BytesProgress | None = None, chain: bool = True) -> BackupResult:
    """Back up VM `name` into `repo` (default: the data dir's); incremental when the chain can continue.

    `chain=False` (an export): a full backup that takes no checkpoint and leaves the VM's chain alone."""
    repository = Repository(repo)
    dom = host.lookup(name)
    state = current_state(dom)
    if not state.may_back_up:
        raise StateError(name, state, "running, paused or shut off", "back up")
    if quiesce and not state.live:
        raise StateError(name, state, "running", "back up with --quiesce")
    config = config_xml(dom)
    uuid = dom.uuid()
    project = domain_project(dom)
    view = parse_domain(dom.xml() if state.live else config)
    disks, skipped = _disks(view.disks)
    if not disks:
        raise InvalidInput(f"VM {name!r} has no writable disk to back up")
    if quiesce and not view.has_agent_channel:
        raise GuestError(f"VM {name!r} has no guest agent channel: --quiesce needs qemu-ga in the guest")
    repository.ensure()
    repository.check_reachable()
    # Bitmaps live in qcow2 v3 images only: a v2 (or raw) disk gets full backups, without a checkpoint.
    bitmap_ready = all(_bitmap_ready(host, d) for d in disks)
    last = repository.latest(name)
    parent, reason = _decide(dom, uuid, disks, last, full or not chain, dom.checkpoint_names(), host.uri)
    if not bitmap_ready:
        parent = None
        reason = ("full backup: a disk is not qcow2 v3 (raw, or qcow2 compat 0.10), which cannot hold the dirty "
                  "bitmap incrementals need (offline: qemu-img amend -o compat=1.1)")
    backup_id = _new_id(name)
    checkpoint = f"{CHECKPOINT_PREFIX}{backup_id}" if bitmap_ready and chain else None
    partial = repository.begin(backup_id)
    started_paused = published = False
    try:
        partial.note(vm=name, uri=host.uri, started_paused=False)
        if state == "shut off":
            progress(f"starting {name} paused (its guest does not run) so libvirt can read its disks")
            partial.note(started_paused=True)
            dom.start_paused()
            started_paused = True
        progress(reason)
        try:
            _run_job(dom, partial, disks, skipped, parent.checkpoint if parent else None, checkpoint, quiesce,
                     progress, on_bytes)
        except _ChainBroken as err:
            parent = None
            reason = (f"full backup, a new chain: the last backup's dirty bitmap is gone from the disk ({err}); "
                      "a snapshot revert or a clone puts a VM on a new image")
            progress(reason)
            partial.clear()
            _drop_checkpoints(dom, keep=None)
            _run_job(dom, partial, disks, skipped, None, checkpoint, quiesce, progress, on_bytes)
        _check_shared(host, partial, disks)
        files: list[BackupFile] = []
        for disk in disks:
            file_name = f"disk-{disk.target}.qcow2"
            path = partial.file(file_name)
            parent_file = None
            if parent is not None:
                previous = parent.file("disk", disk.target)
                assert previous is not None  # _decide compared the disk sets
                parent_file = f"{parent.id}/{previous.name}"
                # The job's file reads unchanged clusters from the live disk: point it at the previous backup.
                qemu_img_rebase_unsafe(path, f"../{parent_file}", "qcow2")
            progress(f"checksum of {disk.target}")
            files.append(BackupFile(file_name, "disk", path.stat().st_size, sha256_of(path), disk.target,
                                    parent_file, image_info(path).virtual_size, disk.source))
        for file_name, role, target in _extra_files(host, partial, config, view.disks, uuid):
            path = partial.file(file_name)
            files.append(BackupFile(file_name, role, path.stat().st_size, sha256_of(path), target))
        manifest = Manifest(id=backup_id, vm=name, uuid=uuid, project=project, host=host.uri,
                            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                            kind="incremental" if parent else "full", parent=parent.id if parent else None,
                            checkpoint=checkpoint, state=str(state), quiesced=quiesce, reason=reason,
                            domain_xml=config, files=tuple(files))
        if partial.cancel_requested:
            raise Conflict(f"backup of {name} cancelled: nothing was kept")
        partial.publish(manifest)
        published = True
        if checkpoint:
            # Only now: until the backup exists, the previous one's checkpoint is what a retry continues from.
            with contextlib.suppress(VmdeckError):
                _drop_checkpoints(dom, keep=checkpoint)
    except BaseException:
        if published:
            raise  # the backup exists; a checkpoint left over only costs writes, the next backup drops it
        partial.discard()
        if checkpoint:
            # A checkpoint no backup records would only cost writes; the last good one stays.
            with contextlib.suppress(VmdeckError):
                if checkpoint in dom.checkpoint_names():
                    dom.delete_checkpoint(checkpoint)
        raise
    finally:
        if started_paused:
            _off_again(dom)
    size = manifest.total_bytes
    return BackupResult(backup_id, name, manifest.kind, reason, size, str(repository.root),
                        f"backup {backup_id} of {name}: {manifest.kind}, {size / 2**20:.1f} MiB ({reason})")


def _check_shared(host: Host, partial: Partial, disks: list[DiskView]) -> None:
    """On another host QEMU writes the disk files there: the repository must be a share mounted at the
    same path on both, or this machine finds nothing."""
    missing = [d.target for d in disks if not partial.file(f"disk-{d.target}.qcow2").exists()]
    if missing:
        raise HostError(f"the backup job on {host.uri} wrote {', '.join(missing)} where this machine cannot see "
                        f"it: the repository must be a share mounted at the same path on that host")


def _off_again(dom: Domain, timeout: float = 60.0) -> None:
    """The VM was shut off before its backup: leave it shut off when the call returns, not "shutting down"
    (a loaded host may answer the first destroy late, or refuse it while QEMU still starts)."""
    deadline = time.monotonic() + timeout
    while True:
        state = current_state(dom)
        if not state.active or time.monotonic() > deadline:
            return
        with contextlib.suppress(VmdeckError):
            dom.poweroff()
        if current_state(dom) == VmState.SHUT_OFF:
            return
        time.sleep(0.2)


def settle_partial(host: Host, folder: Path) -> None:
    """What a killed backup left: its libvirt job (stopped), the VM it started paused (powered off again,
    if still paused), and its folder (removed)."""
    from vmdeck.storage.backup_repo import read_facts

    facts = read_facts(folder)
    vm = facts.get("vm")
    if isinstance(vm, str) and facts.get("uri") == host.uri:
        with contextlib.suppress(VmdeckError):
            dom = host.lookup(vm)
            if dom.backup_job()[0] == "running":
                dom.abort_job()
                _wait_job_gone(dom)
            if facts.get("started_paused") and current_state(dom) == "paused":
                dom.poweroff()
    shutil.rmtree(folder, ignore_errors=True)

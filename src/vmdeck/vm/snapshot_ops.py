"""Snapshots of a VM: create, list, revert, delete — external qcow2 overlays, reverted by vmdeck (core layer).

libvirt 9.0 creates external snapshots but cannot revert to them (that came in
9.9), and its snapshot metadata then blocks operations it does not support.
So vmdeck keeps the snapshot tree in its own domain metadata
(vmdeck.domxml.snapshots) and asks libvirt only for the parts it does well:
creating the overlays on a running VM (atomically, with --quiesce through the
guest agent and --memory through its save format), block commit, restore.

- create: every writable non-raw disk gets a new qcow2 overlay; the image it
  was writing becomes the snapshot's frozen, read-only image.
- revert: a *fresh* overlay on each frozen image (so the snapshot stays
  revertable), the domain redefined to use it, the NVRAM copy put back, and
  with a memory state the VM restored from it; the overlay left behind is
  deleted if nothing uses it.
- delete: a frozen image with exactly one user (an overlay of this VM) is
  merged: that overlay is committed into it (block commit when the VM runs,
  `qemu-img commit` when it is off) and the chain is re-pointed; a frozen
  image nothing uses is dropped; one with several users (branches, linked
  clones) stays as their shared backing file until its last user goes.

Every file made here is recorded as an owned volume, so `vmdeck delete`
removes it with the VM — unless another VM still reads it (see lifecycle).
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

from vmdeck.domxml.names import VMDECK_NS
from vmdeck.domxml.parse import DiskView, parse_domain
from vmdeck.domxml.snapshots import (
    metadata_with_tree,
    nvram_path,
    read_tree,
    set_disk_sources,
    snapshot_xml,
    write_tree,
)
from vmdeck.errors import Conflict, GuestError, HostError, InvalidInput, StateError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import AGENT_ABSENT, BLOCK_JOB_NOT_READY, Domain
from vmdeck.paths import pool_dir
from vmdeck.storage.images import backing_chain, create_overlay, image_info, qemu_img_commit, qemu_img_rebase_unsafe
from vmdeck.storage.pool import delete_volume, ensure_pool, refresh_pool
from vmdeck.storage.usage import image_usage
from vmdeck.vm.snapshots import SnapshotRecord, SnapshotTree, check_snapshot_name
from vmdeck.vm.state import current_state

__all__ = ["SnapshotResult", "create_snapshot", "list_snapshots", "revert_snapshot", "delete_snapshot",
           "snapshot_tree", "collect_garbage", "config_xml", "save_tree"]

Progress = Callable[[str], None]
# A live block commit under TCG on a loaded host: generous, it waits on the job itself.
BLOCK_JOB_TIMEOUT = 600.0


@dataclass(frozen=True)
class SnapshotResult:
    vm: str
    snapshot: str
    message: str
    state: str  # the VM's state afterwards


# -- reading and writing the record -------------------------------------------------------------


def _require_local(host: Host) -> None:
    if not host.is_local:
        raise HostError(f"snapshots need the VM's host to be this machine (qemu-img works on local files): {host.uri}")


def config_xml(dom: Domain) -> str:
    return dom.xml(inactive=True, secure=True)


def snapshot_tree(dom: Domain) -> SnapshotTree:
    return read_tree(config_xml(dom))


def save_tree(dom: Domain, tree: SnapshotTree, owned_add: tuple[str, ...] = (),
              owned_remove: tuple[str, ...] = ()) -> None:
    """Store the tree (and owned-volume changes) in the configuration, and in the live definition if running."""
    for live in (False, True) if dom.is_active() else (False,):
        current = dom.metadata(VMDECK_NS, live=live)
        dom.set_metadata(metadata_with_tree(current, tree, owned_add, owned_remove), "vmdeck", VMDECK_NS, live=live)


def _define(host: Host, xml: str, what: str) -> Domain:
    return host.conn.define(xml, context=what)


def _snapshot_disks(view_disks: tuple[DiskView, ...], vm: str) -> list[DiskView]:
    """The disks a snapshot covers: writable images; CD media and read-only disks are skipped."""
    chosen = []
    for disk in view_disks:
        if disk.device != "disk" or disk.readonly or not disk.source:
            continue
        if disk.format != "qcow2":
            raise InvalidInput(f"disk {disk.target} of VM {vm!r} is {disk.format or 'of unknown format'} "
                               f"({disk.source}): vmdeck snapshots qcow2 disks only; convert it "
                               "(qemu-img convert -O qcow2) or detach it first")
        chosen.append(disk)
    if not chosen:
        raise InvalidInput(f"VM {vm!r} has no writable disk to snapshot")
    return chosen


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _overlay_name(vm: str, target: str) -> str:
    return f"{vm}-{target}-ov-{secrets.token_hex(3)}.qcow2"


def _copy_into_pool(host: Host, source: str, name: str) -> str:
    dest = pool_dir() / name
    shutil.copy2(source, dest)
    refresh_pool(ensure_pool(host))  # retries while another client's volume job runs
    return str(dest)


def _remove_files(host: Host, paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(Exception):
            delete_volume(host, path)
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()


# -- create -------------------------------------------------------------------------------------


def create_snapshot(host: Host, name: str, snap: str | None = None, *, description: str = "",
                    memory: bool = False, quiesce: bool = False,
                    progress: Progress = lambda _m: None) -> SnapshotResult:
    _require_local(host)
    snap = check_snapshot_name(snap or datetime.now(UTC).strftime("snap-%Y%m%d-%H%M%S"))
    if memory and quiesce:
        # libvirt quiesces disk-only snapshots only; a memory snapshot pauses the guest, which is consistent anyway.
        raise InvalidInput("--memory and --quiesce do not combine: a memory snapshot already captures "
                           "the paused guest consistently", field="quiesce")
    dom = host.lookup(name)
    state = current_state(dom)
    if not state.may_snapshot:
        raise StateError(name, state, "running, paused or shut off", "snapshot")
    running = state.live
    if (memory or quiesce) and not state.may_snapshot_memory:
        raise StateError(name, state, "running", "snapshot with --memory or --quiesce")
    tree = snapshot_tree(dom)
    if tree.has(snap):
        raise Conflict(f"VM {name!r} already has a snapshot named {snap!r}")
    xml = dom.xml()
    view = parse_domain(xml)
    if quiesce and not view.has_agent_channel:
        raise GuestError(f"VM {name!r} has no guest agent channel: --quiesce needs qemu-ga in the guest")
    disks = _snapshot_disks(view.disks, name)
    made: list[str] = []
    try:
        overlays: dict[str, str] = {}
        for disk in disks:
            progress(f"new overlay for {disk.target} on {Path(disk.source or '').name}")
            overlays[disk.target] = create_overlay(host, disk.source or "", _overlay_name(name, disk.target))
            made.append(overlays[disk.target])
        config = config_xml(dom)
        nvram = nvram_path(config)
        nvram_copy = None
        if nvram and Path(nvram).exists():
            nvram_copy = _copy_into_pool(host, nvram, f"{name}-{snap}-{secrets.token_hex(3)}.nvram")
            made.append(nvram_copy)
        memory_file = str(pool_dir() / f"{name}-{snap}-{secrets.token_hex(3)}.mem") if memory else None
        record = SnapshotRecord(name=snap, created=_now(), parent=tree.current, state=state,
                                disks=tuple((d.target, d.source or "") for d in disks), description=description,
                                memory=memory_file, nvram=nvram_copy, quiesced=quiesce)
        if running:
            progress("saving memory and device state" if memory else
                     "switching the running VM to the new overlays" + (" (filesystems frozen)" if quiesce else ""))
            if memory_file:
                made.append(memory_file)
            skipped = [d.target for d in view.disks if d.target not in overlays]
            try:
                dom.snapshot_external(snapshot_xml(snap, description, overlays, skipped, memory_file),
                                      with_memory=memory, quiesce=quiesce)
            except VmdeckError as err:
                if quiesce and err.cause == AGENT_ABSENT:
                    raise GuestError(f"cannot quiesce VM {name!r}: {err.libvirt_text or err}") from err
                raise
            if memory_file:
                refresh_pool(ensure_pool(host))  # retries while another client's volume job runs
            # libvirt updates the configuration with the new sources too; make sure (it must survive a restart).
            config = config_xml(dom)
            if any(parse_disk_source(config, t) != p for t, p in overlays.items()):
                _define(host, set_disk_sources(config, overlays), f"{name}: redefine")
            save_tree(dom, tree.add(record, tuple(made)), owned_add=tuple(made))
        else:
            new_xml = write_tree(set_disk_sources(config, overlays), tree.add(record, tuple(made)),
                                 owned_add=tuple(made))
            _define(host, new_xml, f"{name}: redefine with the new overlays")
    except BaseException:
        _remove_files(host, made)
        raise
    what = "disks" + (", memory" if memory else "") + (" (quiesced)" if quiesce else "")
    return SnapshotResult(name, snap, f"snapshot {snap} of {name} taken ({what})", current_state(dom))


def parse_disk_source(xml: str, target: str) -> str | None:
    return next((d.source for d in parse_domain(xml).disks if d.target == target), None)


# -- list ---------------------------------------------------------------------------------------


def list_snapshots(host: Host, name: str) -> SnapshotTree:
    return snapshot_tree(host.lookup(name))


# -- revert -------------------------------------------------------------------------------------


def revert_snapshot(host: Host, name: str, snap: str, *, progress: Progress = lambda _m: None) -> SnapshotResult:
    _require_local(host)
    dom = host.lookup(name)
    tree = snapshot_tree(dom)
    record = tree.get(snap)
    for target, image in record.disks:
        if not Path(image).exists():
            raise HostError(f"the frozen image of snapshot {snap} for {target} is missing: {image}")
    if record.memory and not Path(record.memory).exists():
        raise HostError(f"the memory state of snapshot {snap} is missing: {record.memory}")
    state = current_state(dom)
    if state != "shut off":
        progress(f"powering off {name} (its present state is replaced by snapshot {snap})")
        dom.poweroff()
    config = config_xml(dom)
    old_sources = [d.source for d in parse_domain(config).disks if d.source]
    made: list[str] = []
    try:
        overlays: dict[str, str] = {}
        for target, image in record.disks:
            progress(f"fresh overlay for {target} on {Path(image).name}")
            overlays[target] = create_overlay(host, image, _overlay_name(name, target))
            made.append(overlays[target])
        new_tree = tree.with_files(add=tuple(made))
        new_tree = SnapshotTree(new_tree.snapshots, snap, new_tree.created_files)
        new_xml = write_tree(set_disk_sources(config, overlays), new_tree, owned_add=tuple(made))
        nvram = nvram_path(config)
        if record.nvram and nvram:
            progress("restoring the UEFI variable store saved with the snapshot")
            shutil.copyfile(record.nvram, nvram)
        _define(host, new_xml, f"{name}: redefine on snapshot {snap}")
    except BaseException:
        _remove_files(host, made)
        raise
    if record.memory:
        progress("restoring memory and device state")
        host.conn.restore(record.memory, config_xml(dom), context=f"restore {name} from snapshot {snap}")
    removed = collect_garbage(host, name, candidates=old_sources)
    after = current_state(dom)
    # In words: these files held only the state the revert discarded.
    note = (f"; {len(removed)} disk file(s) of the discarded state deleted" if len(removed) > 1 else
            "; the discarded state's disk file deleted" if removed else "")
    return SnapshotResult(name, snap, f"{name} reverted to snapshot {snap} ({after}){note}", after)


# -- delete -------------------------------------------------------------------------------------


def _wait_block_job(dom: Domain, target: str, *, pivot: bool) -> None:
    deadline = time.monotonic() + BLOCK_JOB_TIMEOUT
    while time.monotonic() < deadline:
        info = dom.block_job(target)
        if not info:
            if pivot:
                raise HostError(f"{dom.name}: the block commit of {target} ended before it could pivot")
            return
        if pivot and info.get("end", 0) > 0 and info.get("cur") == info.get("end"):
            try:
                dom.block_job_pivot(target)
            except VmdeckError as err:
                if err.cause != BLOCK_JOB_NOT_READY:  # QEMU reports "ready" a moment after cur == end
                    raise
            else:
                _wait_gone(dom, target, deadline)
                return
        time.sleep(0.2)
    raise HostError(f"{dom.name}: the block job on {target} did not finish within {BLOCK_JOB_TIMEOUT:g} s")


def _wait_gone(dom: Domain, target: str, deadline: float) -> None:
    while time.monotonic() < deadline and dom.block_job(target):
        time.sleep(0.1)


def _merge(host: Host, dom: Domain, target: str, upper: str, frozen: str, fmt: str,
           progress: Progress) -> None:
    """Commit `upper` (the one image on top of `frozen`) into `frozen`; afterwards nothing names `upper`."""
    live_chain: list[str] = []
    if dom.is_active():
        live_source = parse_disk_source(dom.xml(), target)
        live_chain = [info.path for info in backing_chain(live_source)] if live_source else []
    if upper in live_chain:
        active = live_chain[0] == upper
        progress(f"block commit of {Path(upper).name} into {Path(frozen).name} ({target}, live)")
        dom.block_commit(target, frozen, upper, active=active)
        _wait_block_job(dom, target, pivot=active)
    else:
        progress(f"qemu-img commit of {Path(upper).name} into {Path(frozen).name} ({target})")
        usage = image_usage(host)
        qemu_img_commit(upper)
        for user in usage.users_of(upper):
            kind, _, path = user.partition(":")
            if kind == "image":
                qemu_img_rebase_unsafe(path, frozen, fmt)


def delete_snapshot(host: Host, name: str, snap: str, *, progress: Progress = lambda _m: None) -> SnapshotResult:
    _require_local(host)
    dom = host.lookup(name)
    tree = snapshot_tree(dom)
    record = tree.get(snap)
    state = current_state(dom)
    if not state.may_snapshot:
        raise StateError(name, state, "running, paused or shut off", "delete a snapshot of")
    notes: list[str] = []
    to_remove: list[str] = list(record.files)
    tree = tree.without(snap)
    # Save first without the record (its frozen images stay owned and in use by the chain): a crash
    # after this point leaves a consistent tree with, at worst, an image the next clean-up merges or drops.
    save_tree(dom, tree)
    for target, frozen in record.disks:
        usage = image_usage(host)
        users = usage.users_of(frozen)
        if not users:
            if frozen in tree.created_files:
                to_remove.append(frozen)
                notes.append(f"{target}: the snapshot's own disk file, read by nothing else, deleted")
            continue
        images = [u.partition(":")[2] for u in users if u.startswith("image:")]
        vm_users = {u.split(":")[1] for u in users if u.startswith("vm:")}
        only_ours = len(users) == 1 and len(images) == 1 and images[0] in tree.created_files \
            and usage.vms_using(images[0]) <= {name}
        if not only_ours:
            owners = sorted(vm_users | usage.vms_using(frozen) - {name})
            notes.append(f"{target}: {Path(frozen).name} kept: "
                         + (f"{', '.join(owners)} still read(s) it" if owners else "other snapshots still read it"))
            continue
        upper = images[0]
        _merge(host, dom, target, upper, frozen, image_info(frozen).format, progress)
        config = config_xml(dom)
        if parse_disk_source(config, target) == upper:
            config = set_disk_sources(config, {target: frozen})
        tree = tree.replace_image(upper, frozen)
        _define(host, write_tree(config, tree), f"{name}: redefine after merging {target}")
        if dom.is_active():
            save_tree(dom, tree)
        to_remove.append(upper)
        notes.append(f"{target}: merged")
    tree = tree.with_files(remove=tuple(to_remove))
    save_tree(dom, tree, owned_remove=tuple(to_remove))
    _remove_files(host, to_remove)
    collect_garbage(host, name)
    return SnapshotResult(name, snap, f"snapshot {snap} of {name} deleted ({'; '.join(notes) or 'no disks'})",
                          current_state(dom))


# -- garbage: overlays nothing uses any more ----------------------------------------------------


def collect_garbage(host: Host, name: str, candidates: list[str] | None = None) -> list[str]:
    """Delete files vmdeck made for `name`'s snapshots that no VM, image or snapshot uses any more."""
    dom = host.lookup(name)
    tree = snapshot_tree(dom)
    removed: list[str] = []
    while True:
        usage = image_usage(host)
        pool = [p for p in (candidates if candidates is not None else tree.created_files)
                if p in tree.created_files and p not in removed]
        unused = [p for p in pool if not usage.in_use(p)]
        if not unused:
            break
        save_tree(dom, tree.with_files(remove=tuple(unused)), owned_remove=tuple(unused))
        tree = snapshot_tree(dom)
        _remove_files(host, unused)
        removed.extend(unused)
        candidates = None  # an image's removal may free its backing file: look again at everything
    return removed

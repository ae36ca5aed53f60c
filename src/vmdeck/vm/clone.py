"""Clone a VM: a full copy through libvirt's storage API, or a linked clone on a shared frozen image (core layer).

- full: every disk vmdeck owns is copied with libvirt's vol-clone
  (`createXMLFrom`, which flattens a snapshot chain into one image); the
  source must be shut off so the copy is consistent.
- linked: the source gets a snapshot named `clone-NEW` (works while it runs);
  the clone gets a qcow2 overlay on each of that snapshot's frozen images,
  which are now read-only and shared. Creating it copies no data.

Either way the clone gets a new UUID and new MAC addresses (libvirt makes
them), its own copy of the NVRAM and of the TPM state (vm.tpm), its own serial log, and — if the source
boots with a NoCloud seed (a CD labelled `cidata`) — a new seed with a new
instance-id, so cloud-init runs again in it (`_reissue_seed`: the hook for
issue 10's seeds).

Deleting the source never breaks a linked clone: `vmdeck delete` keeps every
image another VM still reads and hands its ownership to that VM, so the shared
image goes with its last user (vm.lifecycle).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmdeck.domxml.parse import parse_domain
from vmdeck.domxml.snapshots import NVRAM_DIR, clone_domain_xml, nvram_path, read_tree
from vmdeck.domxml.storage import volume_xml
from vmdeck.domxml.tpm import emulated_tpm_version
from vmdeck.errors import Conflict, HostError, InvalidInput, StateError
from vmdeck.host.connection import Host
from vmdeck.paths import pool_dir
from vmdeck.spec.models import check_name
from vmdeck.storage.images import create_overlay
from vmdeck.storage.pool import delete_volume, ensure_pool, refresh_pool
from vmdeck.vm.seeds import is_seed, reissue_seed
from vmdeck.vm.snapshot_ops import config_xml, create_snapshot
from vmdeck.vm.state import current_state
from vmdeck.vm.tpm import copy_tpm_state

__all__ = ["CloneResult", "clone_vm"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CloneResult:
    source: str
    name: str
    linked: bool
    disks: dict[str, str]  # target -> the clone's image
    message: str


def _copy_volume(host: Host, source: str, name: str, progress: Progress) -> str:
    """vol-clone through libvirt (flattens a backing chain); reports the bytes written every few seconds."""
    pool = ensure_pool(host)
    src = host.conn.volume_at(source)
    capacity = src.info()[0]
    dest = pool_dir() / name
    done = threading.Event()

    def report() -> None:
        while not done.wait(2.0):
            with contextlib.suppress(OSError):
                progress(f"copying {Path(source).name}: {os.stat(dest).st_size / 2**20:.0f} MiB written")

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        return pool.clone_volume(volume_xml(name, capacity, "qcow2"), src).path()
    finally:
        done.set()
        reporter.join()


def _reissue_seed(host: Host, new: str, seed: str) -> str:
    """A copy of a NoCloud seed with a new instance-id, in vmdeck's pool: cloud-init runs again in the clone."""
    out = reissue_seed(seed, new, pool_dir() / f"{new}-seed.iso")
    refresh_pool(ensure_pool(host))  # retries while another client's volume job runs
    return str(out)


def clone_vm(host: Host, source: str, new: str, *, linked: bool = False, start: bool = False,
             progress: Progress = lambda _m: None) -> CloneResult:
    if not host.is_local:
        raise HostError(f"cloning needs the VM's host to be this machine: {host.uri}")
    try:
        check_name(new)
    except ValueError as err:
        raise InvalidInput(str(err), field="name") from err
    if host.exists(new):
        raise Conflict(f"a VM named {new!r} already exists")
    dom = host.lookup(source)
    state = current_state(dom)
    if state.live and not linked:
        raise StateError(source, state, "shut off (or use --linked, which snapshots it as it runs)",
                         "make a full clone of")
    xml = config_xml(dom)
    view = parse_domain(xml)
    owned = set(view.owned_volumes) | set(read_tree(xml).created_files)
    seeds_from: dict[str, str] = {}
    copy: list[str] = []
    for disk in view.disks:
        if not disk.source:
            continue
        if disk.device == "cdrom" or disk.readonly:
            if is_seed(disk.source):
                seeds_from[disk.target] = disk.source
            continue
        if disk.source not in owned:
            raise InvalidInput(f"disk {disk.target} of {source!r} is {disk.source}, an image vmdeck did not create: "
                               "vmdeck copies only its own volumes (detach it, or attach it to the clone yourself)")
        copy.append(disk.target)
    made: list[str] = []
    disks: dict[str, str] = {}
    try:
        if linked:
            snap = f"clone-{new}"[:64]
            progress(f"snapshot {snap} of {source}: its present disks become the shared, read-only backing")
            create_snapshot(host, source, snap, description=f"backing of linked clone {new}", progress=progress)
            record = read_tree(config_xml(dom)).get(snap)
            for target, frozen in record.disks:
                disks[target] = create_overlay(host, frozen, f"{new}-{target}-ov-{secrets.token_hex(3)}.qcow2")
                made.append(disks[target])
        else:
            for disk in view.disks:
                if disk.target in copy and disk.source:
                    progress(f"copying {disk.target} ({Path(disk.source).name})")
                    disks[disk.target] = _copy_volume(host, disk.source, f"{new}-{disk.target}.qcow2", progress)
                    made.append(disks[disk.target])
        seeds = {t: _reissue_seed(host, new, s) for t, s in seeds_from.items()}
        made.extend(seeds.values())
        nvram = None
        old_nvram = nvram_path(xml)
        if old_nvram and Path(old_nvram).exists():
            nvram = f"{NVRAM_DIR}/{new}_VARS.fd"
            progress(f"copying the UEFI variable store to {nvram}")
            shutil.copy2(old_nvram, nvram)
        defined = host.conn.define(clone_domain_xml(xml, source, new, disks, made, seeds, nvram),
                                   context=f"define {new}")
        if emulated_tpm_version(xml):
            progress("copying the TPM state")
            try:
                copy_tpm_state(dom.uuid(), defined.uuid())
            except BaseException:
                with contextlib.suppress(Exception):
                    defined.undefine()
                raise
    except BaseException:
        for path in made:
            with contextlib.suppress(Exception):
                delete_volume(host, path)
        raise
    if start:
        from vmdeck.vm.lifecycle import start as start_vm

        progress(f"starting {new}")
        start_vm(host, new)
    kind = "linked clone" if linked else "full clone"
    return CloneResult(source, new, linked, disks,
                       f"{new}: {kind} of {source} ({len(disks)} disk(s))" + (", started" if start else ""))

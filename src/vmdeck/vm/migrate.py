"""Move a VM to another libvirt host: live (memory copied while it runs) or offline (core layer).

A live migration is driven by the source libvirtd itself (peer-to-peer) over its
own connection to `dest_uri`, so `dest_uri` must be reachable from the source
host; vmdeck opens a connection too, to check and prepare the destination, and
an offline one (only a definition and disk bytes) goes through that connection.

Storage is assumed NOT shared, the usual case for a small provider with a few
hosts: every writable disk in vmdeck's pool is pre-created on the destination
(QEMU's NBD disk copy needs a target file of the same size) and copied by QEMU
during a live migration, or streamed through libvirt's storage API for an
offline one. With `shared_storage=True` the disks stay where they are. After a
successful move with copied disks, the source's now stale copies of the VM's own
volumes are deleted, as `vmdeck delete` would: the VM owns the new ones.

The kernel/initrd of a direct-kernel-boot VM (vmdeck's tiny image) are plain
files, not volumes: they must already exist at the same path on the destination
(`vmdeck image build tiny` there), otherwise libvirt refuses and says which file.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmdeck.domxml.migration import MIGRATION_KEY, MIGRATION_NS, render_record
from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import Conflict, HostError, InvalidInput, StateError, TimedOut, VmdeckError
from vmdeck.host.connection import Host, connect
from vmdeck.host.libvirt_api import Domain
from vmdeck.paths import pool_dir
from vmdeck.storage.pool import GIB, create_volume, delete_volume, volume_info
from vmdeck.vm.state import LIVE_STATES, STOPPED_STATES, current_state, require_state

__all__ = ["migrate"]

Progress = Callable[[str], None]
_POLL_S = 0.5


def _pool_disks(host: Host, dom: Domain) -> list[tuple[str, int, str]]:
    """(path, capacity in bytes, format) of every writable disk that lives in vmdeck's pool."""
    pool = pool_dir().resolve()
    disks = []
    for disk in parse_domain(dom.xml(inactive=True)).disks:
        if disk.device != "disk" or disk.readonly or not disk.source:
            continue
        if Path(disk.source).resolve().parent != pool:
            continue
        capacity, _allocation = volume_info(host, disk.source)
        disks.append((disk.source, capacity, disk.format or "raw"))
    return disks


def _prepare_destination(dest: Host, disks: list[tuple[str, int, str]], progress: Progress) -> list[str]:
    """Create empty volumes of the same name, size and format on the destination; returns their paths."""
    created: list[str] = []
    try:
        for path, capacity, fmt in disks:
            name = Path(path).name
            progress(f"creating {name} ({capacity / GIB:g} GiB) on {dest.uri}")
            made = create_volume(dest, name, capacity / GIB, fmt)
            if str(made) != path:
                # The destination's pool lives elsewhere: QEMU would copy to a path the VM's XML does not name.
                raise HostError(f"the destination's vmdeck pool is at {made.parent}, not {Path(path).parent}")
            created.append(path)
    except VmdeckError:
        _remove_volumes(dest, created)
        raise
    return created


def _remove_volumes(host: Host, paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(VmdeckError):
            delete_volume(host, path)


def _copy_volume(src: Host, dest: Host, path: str, progress: Progress) -> None:
    """Stream one volume's bytes from the source host to the destination host (offline migration)."""
    src_vol = src.conn.volume_at(path)
    dest_vol = dest.conn.volume_at(path)
    down = src.conn.new_stream(context=f"copy {path}")
    up = dest.conn.new_stream(context=f"copy {path}")
    src_vol.download(down)
    dest_vol.upload(up)
    copied = 0
    while True:
        chunk = down.recv(1 << 20)
        if chunk == b"":  # end of stream
            break
        if chunk:
            up.send_all(chunk)
            copied += len(chunk)
    down.finish()
    up.finish()
    progress(f"copied {Path(path).name}: {copied / 2**20:.1f} MiB")


def _watch(dom: Domain, done: threading.Event, progress: Progress, timeout: float | None) -> bool:
    """Report the migration job's progress until `done` is set (runs in the caller's thread).

    With `timeout`, a job still running after that many seconds is cancelled (abortJob: the VM keeps
    running on the source, as libvirt guarantees for a cancelled migration); returns True then.
    """
    last = ""
    started = time.monotonic()
    aborted = False
    while not done.wait(_POLL_S):
        if timeout is not None and not aborted and time.monotonic() - started > timeout:
            progress(f"migration still running after {timeout:g} s: cancelling it")
            aborted = dom.abort_job()
            continue
        try:
            stats = dom.job_stats()
        except VmdeckError:
            continue  # the job ended between two polls
        if stats is None:
            continue
        parts = []
        if stats.get("disk_total"):
            parts.append(f"disks {stats.get('disk_processed', 0) / 2**20:.0f}/{stats['disk_total'] / 2**20:.0f} MiB")
        if stats.get("memory_total"):
            parts.append(f"memory {stats.get('memory_processed', 0) / 2**20:.0f}/"
                         f"{stats['memory_total'] / 2**20:.0f} MiB, {stats.get('memory_remaining', 0) / 2**20:.0f} MiB left")
        if stats.get("memory_iteration"):
            parts.append(f"pass {stats['memory_iteration']}")
        line = ", ".join(parts) or "starting"
        if line != last:
            progress(f"migrating: {line}")
            last = line
    return aborted


class _Aborted(Exception):
    """The migration was cancelled after its timeout (carries libvirt's own error as `cause`)."""

    def __init__(self, cause: VmdeckError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _run_live(dom: Domain, dest_uri: str, migrate_uri: str | None, disks: list[str], progress: Progress,
              timeout: float | None, bandwidth_mib: int | None) -> None:
    """The migration in a worker thread (it blocks until the end) while this thread reports progress."""
    failure: list[VmdeckError] = []
    done = threading.Event()

    def work() -> None:
        try:
            dom.migrate_live(dest_uri, migrate_uri=migrate_uri, disks=disks, bandwidth_mib=bandwidth_mib,
                             context=f"migrate {dom.name} to {dest_uri}")
        except VmdeckError as err:
            failure.append(err)
        finally:
            done.set()

    worker = threading.Thread(target=work, name=f"migrate {dom.name}", daemon=True)
    worker.start()
    aborted = _watch(dom, done, progress, timeout)
    worker.join()
    if failure and aborted:
        raise _Aborted(failure[0])
    if failure:
        raise failure[0]


def _completed_stats(dest: Host, name: str) -> dict[str, Any]:
    """The completed job's statistics, which libvirt keeps on the destination ({} when it has none)."""
    with contextlib.suppress(VmdeckError):
        return dest.lookup(name).job_stats(completed=True) or {}
    return {}


def _record(dom: Domain, record: dict[str, Any]) -> None:
    """Keep `record` in the VM's own metadata (live and persistent definition), so it follows the VM."""
    xml = render_record(record)
    with contextlib.suppress(VmdeckError):
        if dom.is_persistent():
            dom.set_metadata(xml, MIGRATION_KEY, MIGRATION_NS, live=False)
        if dom.is_active():
            dom.set_metadata(xml, MIGRATION_KEY, MIGRATION_NS, live=True)


def migrate(host: Host, name: str, dest_uri: str, *, live: bool = True, migrate_uri: str | None = None,
            shared_storage: bool = False, timeout: float | None = None, bandwidth_mib: int | None = None,
            progress: Progress = lambda _m: None) -> str:
    """Move VM `name` from `host` to the libvirt host at `dest_uri`; returns a one-line summary.

    live=True needs a running (or paused) VM and keeps it running; live=False moves a shut-off VM's
    definition (and its disks). `migrate_uri` (tcp://ADDR[:PORT]) is where the destination's QEMU
    listens for the memory stream, for hosts whose hostname does not resolve to the right address.
    `timeout` (live only): cancel a migration still running after that many seconds (TimedOut); the
    VM then keeps running on the source. `bandwidth_mib` caps the copy at that many MiB/s. The
    outcome, downtime and total time are recorded in the VM's metadata (vmdeck.domxml.migration) on
    the host where it ends up.
    """
    if timeout is not None and timeout <= 0:
        raise InvalidInput(f"migration timeout must be above 0 seconds, got {timeout:g}", field="timeout")
    if bandwidth_mib is not None and bandwidth_mib <= 0:
        raise InvalidInput(f"migration bandwidth must be at least 1 MiB/s, got {bandwidth_mib}", field="bandwidth")
    dom = host.lookup(name)
    if live:
        require_state(dom, LIVE_STATES, "live-migrate")
    else:
        require_state(dom, STOPPED_STATES, "migrate offline (use live migration for a running VM)")
        if not dom.is_persistent():
            raise StateError(name, "transient", "persistent", "migrate offline")
    dest = connect(dest_uri)
    try:
        if dest.exists(name):
            raise Conflict(f"cannot migrate VM {name!r}: the destination {dest_uri} already has a VM of that name")
        disks = [] if shared_storage else _pool_disks(host, dom)
        created = _prepare_destination(dest, disks, progress)
        started = time.monotonic()
        try:
            if live:
                # Only the pool's disks are copied: a user's own image outside the pool is the user's to place.
                targets = [d.target for d in parse_domain(dom.xml()).disks if d.source in {p for p, _c, _f in disks}]
                progress(f"live-migrating {name} to {dest_uri}")
                _run_live(dom, dest_uri, migrate_uri, targets, progress, timeout, bandwidth_mib)
            else:
                for path in created:
                    _copy_volume(host, dest, path, progress)
                progress(f"moving the definition of {name} to {dest_uri}")
                # Only the definition moves: this client hands it over on its own two connections.
                dom.migrate_offline(dest.conn, migrate_uri=migrate_uri, context=f"migrate {name} to {dest_uri}")
        except _Aborted as aborted:
            _remove_volumes(dest, created)
            _record(dom, {"outcome": "aborted", "from": host.uri, "to": dest_uri, "at": int(time.time()),
                          "total_ms": int((time.monotonic() - started) * 1000), "timeout_s": int(timeout or 0)})
            raise TimedOut(f"migration of {name} to {dest_uri} did not finish within {timeout:g} s and was "
                           f"cancelled; {name} is {current_state(dom)} on {host.uri}") from aborted.cause
        except BaseException:
            _remove_volumes(dest, created)
            raise
        elapsed = time.monotonic() - started
        stats = _completed_stats(dest, name) if live else {}
        downtime = f", downtime {stats['downtime']} ms" if "downtime" in stats else ""
        _record(dest.lookup(name), {
            "outcome": "completed", "kind": "live" if live else "offline", "from": host.uri, "to": dest_uri,
            "at": int(time.time()), "total_ms": int(elapsed * 1000), "downtime_ms": stats.get("downtime"),
            "libvirt_total_ms": stats.get("time_elapsed"), "memory_bytes": stats.get("memory_processed"),
            "disk_bytes": stats.get("disk_processed")})
        # The source's copies are stale now; the VM owns the destination's.
        owned = set(parse_domain(dest.lookup(name).xml()).owned_volumes)
        stale = [path for path in created if path in owned]
        if not host.exists(name):
            for path in stale:
                progress(f"deleting the source's copy {path}")
            _remove_volumes(host, stale)
        state = current_state(dest.lookup(name))
        return f"{name} moved to {dest_uri} in {elapsed:.1f} s{downtime}; it is {state} there"
    finally:
        dest.close()

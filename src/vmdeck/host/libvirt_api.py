"""The libvirt boundary: the only module that imports libvirt (host layer).

Every libvirt call vmdeck makes goes through the small wrappers here —
`Connection`, `Domain`, `StoragePool`, `StorageVolume`, `Stream` — and every
`libvirt.libvirtError` becomes a vmdeck error here, once (`translate`). Callers
that must tell one failure from another catch vmdeck's classes (NotFound,
Conflict ...) or read the translated error's `reason` (libvirt's error name,
e.g. "operation_timeout"). libvirt's flag constants stay here too: the wrappers
take keyword arguments that say what they mean (`xml(inactive=True)`,
`attach(xml, live=True, config=True)`).

`tests/unit/test_layering.py` fails if any other module imports libvirt.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import libvirt
import libvirt_qemu

from vmdeck.errors import Conflict, GuestError, HostError, InvalidInput, NotFound, VmdeckError

__all__ = [
    "Connection",
    "Domain",
    "Network",
    "StoragePool",
    "StorageVolume",
    "Stream",
    "open_connection",
    "translate",
    "classify",
    "CAUSES",
    "GUEST_FILE_MISSING",
    "TRAY_LOCKED",
    "NO_SPACE",
    "POOL_BUSY",
    "BLOCK_JOB_NOT_READY",
    "HOTPLUG_REFUSED",
    "AGENT_ABSENT",
    "PROGRAM_MISSING",
    "libvirt_errors",
    "ensure_event_loop",
    "add_fd_watch",
    "remove_fd_watch",
    "STATE_NAMES",
]

T = TypeVar("T")

# libvirt prints every error to stderr by default; vmdeck reports them itself, once.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

# -- errors ----------------------------------------------------------------------------------------

_NOT_FOUND = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
    libvirt.VIR_ERR_NO_NETWORK,
    libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
    libvirt.VIR_ERR_NO_DOMAIN_METADATA,
}
_CONFLICT = {libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_DOM_EXIST, libvirt.VIR_ERR_STORAGE_VOL_EXIST}
_INVALID = {
    libvirt.VIR_ERR_INVALID_ARG,
    libvirt.VIR_ERR_XML_ERROR,
    libvirt.VIR_ERR_XML_DETAIL,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
    # "not supported by the connection driver": a request this host's hypervisor driver can never
    # carry out, like OPERATION_UNSUPPORTED; not "host unavailable", which says "try again later".
    libvirt.VIR_ERR_NO_SUPPORT,
}
_GUEST = {
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
    libvirt.VIR_ERR_AGENT_UNSYNCED,
}
_HOST = {
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_AUTH_FAILED,
}
# libvirt's error codes by name ("operation_timeout"), for callers that must tell them apart.
# VIR_ERR_NONE/WARNING/ERROR are error *levels* sharing the same numbers: not codes.
_REASONS: dict[int, str] = {
    value: name[len("VIR_ERR_"):].lower()
    for name, value in vars(libvirt).items()
    if name.startswith("VIR_ERR_") and isinstance(value, int) and name not in ("VIR_ERR_NONE", "VIR_ERR_WARNING",
                                                                               "VIR_ERR_ERROR")
}


# The specific conditions vmdeck reacts to, recognised once, here, from libvirt's code and (where libvirt
# has no code for them) its words: core modules test `error.cause`, never the message text.
TRAY_LOCKED = "tray_locked"  # the guest keeps the CD tray shut (eject/insert without force)
NO_SPACE = "no_space"  # the filesystem under a pool is full
POOL_BUSY = "pool_busy"  # a pool refresh refused while a volume is being built or uploaded
BLOCK_JOB_NOT_READY = "block_job_not_ready"  # a pivot asked a moment before QEMU's job says "ready"
HOTPLUG_REFUSED = "hotplug_refused"  # QEMU or libvirt would not plug a device live (the config still can)
AGENT_ABSENT = "agent_absent"  # no guest agent answering, or it could not freeze the filesystems
PROGRAM_MISSING = "program_missing"  # the guest agent could not run the program (not in the guest)
GUEST_FILE_MISSING = "guest_file_missing"  # the guest agent could not open a file: it is not in the guest
CAUSES = (TRAY_LOCKED, NO_SPACE, POOL_BUSY, BLOCK_JOB_NOT_READY, HOTPLUG_REFUSED, AGENT_ABSENT, PROGRAM_MISSING,
          GUEST_FILE_MISSING)
# libvirt's codes for "this device cannot be hot-plugged here", on a live attach.
_HOTPLUG_CODES = {libvirt.VIR_ERR_OPERATION_UNSUPPORTED, libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
                  libvirt.VIR_ERR_OPERATION_FAILED, libvirt.VIR_ERR_INTERNAL_ERROR}


def classify(code: int | None, text: str) -> str | None:
    """The specific cause of a libvirt error (one of CAUSES), or None."""
    lowered = text.lower()
    if ("tray" in lowered and "locked" in lowered) or "waiting to open tray" in lowered:
        return TRAY_LOCKED  # QEMU: "... is locked ... wait for tray to open"; libvirt 9.0: "timed out waiting ..."
    if "no space left" in lowered:
        return NO_SPACE
    if "asynchronous jobs" in lowered:
        return POOL_BUSY  # "storage pool 'vmdeck' has asynchronous jobs running"
    if "not ready" in lowered and ("pivot" in lowered or "job" in lowered or "block" in lowered):
        return BLOCK_JOB_NOT_READY
    if "guest-file-open" in lowered and "no such file" in lowered:
        return GUEST_FILE_MISSING  # QEMU's agent: "failed to open file '...': No such file or directory"
    if "no such file" in lowered and "agent" in lowered or "failed to execute child process" in lowered:
        return PROGRAM_MISSING
    if code in _GUEST or "guest agent" in lowered or "fsfreeze" in lowered or "freeze" in lowered \
            or "quiesce" in lowered:
        return AGENT_ABSENT
    return None


def translate(err: libvirt.libvirtError, context: str = "") -> VmdeckError:
    """Map a libvirtError to the vmdeck error a user or an API client can act on."""
    code = err.get_error_code()
    text = (err.get_error_message() or str(err)).strip()
    message = f"{context}: {text}" if context else text
    error: VmdeckError
    if code in _NOT_FOUND:
        error = NotFound(message)
    elif code in _CONFLICT:
        error = Conflict(message)
    elif code in _INVALID:
        error = InvalidInput(message)
    elif code in _GUEST:
        error = GuestError(message)
    elif code in _HOST:
        error = HostError(message)
    elif err.get_error_domain() == libvirt.VIR_FROM_RPC:
        # The connection itself broke (libvirtd restarted or went away mid-call): "client socket is
        # closed", "Cannot recv data" come from libvirt's RPC layer with an internal-error code.
        error = HostError(f"host unavailable: {message}")
    else:
        error = VmdeckError(message)
    error.reason = _REASONS.get(code, f"code_{code}") if code is not None else None
    error.libvirt_text = text
    error.cause = classify(code, text)
    return error


@contextlib.contextmanager
def libvirt_errors(context: str = "") -> Iterator[None]:
    """`with libvirt_errors("start web1"):` — libvirt failures leave as vmdeck errors."""
    try:
        yield
    except libvirt.libvirtError as err:
        raise translate(err, context) from err


def _call(context: str, fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except libvirt.libvirtError as err:
        raise translate(err, context) from err


def _affect(live: bool, config: bool) -> int:
    return (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0) | (libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0)


# -- states and events, as words -------------------------------------------------------------------

STATE_NAMES: dict[int, str] = {
    libvirt.VIR_DOMAIN_NOSTATE: "no state",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}
_SHUTOFF_REASONS = {
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "its QEMU crashed or was killed",
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "it was powered off",
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "the guest shut down",
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "it failed to start",
}
_LIFECYCLE_EVENTS = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}
_STATS_KINDS = {
    "state": libvirt.VIR_DOMAIN_STATS_STATE,
    "vcpu": libvirt.VIR_DOMAIN_STATS_VCPU,
    "balloon": libvirt.VIR_DOMAIN_STATS_BALLOON,
    "cpu_total": libvirt.VIR_DOMAIN_STATS_CPU_TOTAL,
    "block": libvirt.VIR_DOMAIN_STATS_BLOCK,
    "interface": libvirt.VIR_DOMAIN_STATS_INTERFACE,
}


def state_name(code: int) -> str:
    return STATE_NAMES.get(code, f"unknown ({code})")


def _stats_flags(kinds: tuple[str, ...]) -> int:
    flags = 0
    for kind in kinds:
        flags |= _STATS_KINDS[kind]
    return flags


# -- streams ---------------------------------------------------------------------------------------


class Stream:
    """A libvirt stream (console, screenshot, volume transfer). recv/send return None for "would block"."""

    def __init__(self, raw: libvirt.virStream, context: str) -> None:
        self.raw = raw
        self.context = context

    def recv(self, size: int) -> bytes | None:
        """Bytes read; b"" at the end of the stream; None when a non-blocking stream has nothing yet."""
        data = _call(self.context, self.raw.recv, size)
        if isinstance(data, int):  # -2: EAGAIN on a non-blocking stream
            return None
        return bytes(data or b"")

    def send(self, data: bytes) -> int | None:
        """Bytes written; None when a non-blocking stream is full for a moment."""
        sent = _call(self.context, self.raw.send, data)
        return None if sent == -2 else int(sent)

    def send_all(self, data: bytes) -> None:
        while data:
            sent = self.send(data)
            if sent is None:  # the socket is full for a moment; what goes through here is small, so retry
                continue
            data = data[sent:]

    def finish(self) -> None:
        _call(self.context, self.raw.finish)

    def close_quietly(self) -> None:
        """Abort the stream and drop its callback; the other side may already be gone, so nothing raises."""
        with contextlib.suppress(libvirt.libvirtError):
            self.raw.eventRemoveCallback()
        with contextlib.suppress(libvirt.libvirtError):
            self.raw.abort()

    def watch(self, callback: Callable[[bool, bool], None]) -> None:
        """Call `callback(readable, closed)` on libvirt's event thread when data arrives or the stream ends."""
        def on_event(_stream: libvirt.virStream, events: int, _opaque: object) -> None:
            callback(bool(events & libvirt.VIR_STREAM_EVENT_READABLE),
                     bool(events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP)))

        _call(self.context, self.raw.eventAddCallback,
              libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP,
              on_event, None)


# -- storage ---------------------------------------------------------------------------------------


class StorageVolume:
    def __init__(self, raw: libvirt.virStorageVol) -> None:
        self.raw = raw

    def path(self) -> str:
        return str(_call("volume", self.raw.path))

    def info(self) -> tuple[int, int]:
        """(capacity, allocation) in bytes."""
        _type, capacity, allocation = _call(f"volume {self.path()}", self.raw.info)
        return int(capacity), int(allocation)

    def xml(self) -> str:
        return str(_call("volume", self.raw.XMLDesc, 0))

    def delete(self) -> None:
        _call(f"delete volume {self.path()}", self.raw.delete, 0)

    def resize(self, capacity: int) -> None:
        _call(f"resize volume {self.path()}", self.raw.resize, capacity, 0)

    def download(self, stream: Stream, length: int = 0) -> None:
        """Stream the volume's bytes (the first `length` only, when not 0) into `stream`."""
        _call(f"download {self.path()}", self.raw.download, stream.raw, 0, length, 0)

    def upload(self, stream: Stream) -> None:
        _call(f"upload {self.path()}", self.raw.upload, stream.raw, 0, 0, 0)


class Network:
    """One libvirt virtual network (a bridge, its dnsmasq and firewall rules)."""

    def __init__(self, raw: libvirt.virNetwork) -> None:
        self.raw = raw
        self.name: str = raw.name()
        self.context = f"network {self.name}"

    def xml(self, *, inactive: bool = False) -> str:
        return str(_call(self.context, self.raw.XMLDesc, libvirt.VIR_NETWORK_XML_INACTIVE if inactive else 0))

    def is_active(self) -> bool:
        return bool(_call(self.context, self.raw.isActive))

    def autostart(self) -> bool:
        return bool(_call(self.context, self.raw.autostart))

    def start(self) -> None:
        _call(self.context, self.raw.create)

    def set_autostart(self, on: bool = True) -> None:
        _call(self.context, self.raw.setAutostart, 1 if on else 0)

    def destroy(self) -> None:
        _call(self.context, self.raw.destroy)

    def undefine(self) -> None:
        _call(self.context, self.raw.undefine)

    def add_dhcp_host(self, host_xml: str, *, live: bool) -> None:
        """Add a static DHCP lease (`<host mac= ip=/>`) to the first IP range, in the config and, live, now."""
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG | (libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE if live else 0)
        _call(self.context, self.raw.update, libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
              libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host_xml, flags)

    def remove_dhcp_host(self, host_xml: str, *, live: bool) -> None:
        """Remove a static DHCP lease add_dhcp_host made (a change undone when a later step failed)."""
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG | (libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE if live else 0)
        _call(self.context, self.raw.update, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
              libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host_xml, flags)


class StoragePool:
    def __init__(self, raw: libvirt.virStoragePool) -> None:
        self.raw = raw
        self.name: str = raw.name()
        self.context = f"storage pool {self.name}"

    def is_active(self) -> bool:
        return bool(_call(self.context, self.raw.isActive))

    def build(self) -> None:
        _call(self.context, self.raw.build, 0)

    def start(self) -> None:
        _call(self.context, self.raw.create, 0)

    def set_autostart(self, on: bool = True) -> None:
        _call(self.context, self.raw.setAutostart, 1 if on else 0)

    def destroy(self) -> None:
        """Stop the pool (a transient one is gone then); its folder and files stay."""
        _call(self.context, self.raw.destroy)

    def refresh(self) -> None:
        _call(self.context, self.raw.refresh, 0)

    def free_bytes(self) -> int:
        return int(_call(self.context, self.raw.info)[3])

    def usage(self) -> tuple[int, int]:
        """(capacity, allocation) in bytes, as libvirt last counted them."""
        info = _call(self.context, self.raw.info)
        return int(info[1]), int(info[2])

    def volume_names(self) -> list[str]:
        return list(_call(self.context, self.raw.listVolumes))

    def volume(self, name: str) -> StorageVolume:
        """The volume `name` (NotFound when there is none)."""
        return StorageVolume(_call(f"volume {name}", self.raw.storageVolLookupByName, name))

    def create_volume(self, xml: str) -> StorageVolume:
        return StorageVolume(_call(self.context, self.raw.createXML, xml, 0))

    def xml(self) -> str:
        return str(_call(self.context, self.raw.XMLDesc, 0))

    def volumes(self) -> list[tuple[str, str]]:
        """(name, path) of every volume, in one call."""
        return [(v.name(), v.path()) for v in _call(self.context, self.raw.listAllVolumes, 0)]

    def clone_volume(self, xml: str, source: StorageVolume) -> StorageVolume:
        """A new volume `xml` with `source`'s content (libvirt's vol-clone; a backing chain is flattened)."""
        return StorageVolume(_call(f"copy {source.path()}", self.raw.createXMLFrom, xml, source.raw, 0))


# -- domains ---------------------------------------------------------------------------------------


class Domain:
    """One libvirt domain. `name` is local to the binding (no RPC)."""

    def __init__(self, raw: libvirt.virDomain) -> None:
        self.raw = raw
        self.name: str = raw.name()

    def _do(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        return _call(f"{what} {self.name}" if what else self.name, fn, *args)

    # reading
    def uuid(self) -> str:
        return str(self._do("", self.raw.UUIDString))

    def state(self) -> tuple[str, str | None]:
        """(state name, why it is shut off or None): ("shut off", "it was powered off")."""
        code, reason = self._do("", self.raw.state)
        why = _SHUTOFF_REASONS.get(reason) if code == libvirt.VIR_DOMAIN_SHUTOFF else None
        return state_name(code), why

    def info(self) -> tuple[str, int, int, int, int]:
        """(state, max memory KiB, memory KiB, vCPUs, CPU time ns)."""
        state, max_kib, cur_kib, vcpus, cpu = self._do("", self.raw.info)
        return state_name(state), int(max_kib), int(cur_kib), int(vcpus), int(cpu)

    def xml(self, *, inactive: bool = False, secure: bool = False) -> str:
        flags = (libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0) | (libvirt.VIR_DOMAIN_XML_SECURE if secure else 0)
        return str(self._do("", self.raw.XMLDesc, flags))

    def is_active(self) -> bool:
        return bool(self._do("", self.raw.isActive))

    def is_persistent(self) -> bool:
        return bool(self._do("", self.raw.isPersistent))

    def autostart(self) -> bool:
        return bool(self._do("", self.raw.autostart))

    def set_autostart(self, on: bool) -> None:
        self._do("autostart", self.raw.setAutostart, 1 if on else 0)

    def interface_addresses(self, source: str) -> dict[str, Any]:
        """The guest's interfaces and addresses from "agent" or "lease" (libvirt's DHCP leases)."""
        flag = {"agent": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
                "lease": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE}[source]
        return dict(self._do("addresses of", self.raw.interfaceAddresses, flag, 0) or {})

    def max_memory_kib(self) -> int:
        return int(self._do("", self.raw.maxMemory))

    def vcpu_count(self, *, maximum: bool = False) -> int:
        flags = libvirt.VIR_DOMAIN_VCPU_MAXIMUM if maximum else libvirt.VIR_DOMAIN_AFFECT_LIVE
        return int(self._do("", self.raw.vcpusFlags, flags))

    def block_capacity(self, target: str) -> int:
        return int(self._do(f"block info {target} of", self.raw.blockInfo, target, 0)[0])

    def job_stats(self, *, completed: bool = False) -> dict[str, Any] | None:
        """The current (or last completed) job's statistics; None when no job runs."""
        flags = libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED if completed else 0
        stats: dict[str, Any] = self._do("job stats of", self.raw.jobStats, flags)
        if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE and not completed:
            return None
        return stats

    # power
    def start(self) -> None:
        self._do("start", self.raw.create)

    def shutdown(self) -> None:
        self._do("shutdown", self.raw.shutdownFlags, libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)

    def poweroff(self) -> None:
        self._do("poweroff", self.raw.destroy)

    def reboot(self) -> None:
        self._do("reboot", self.raw.reboot, libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)

    def reset(self) -> None:
        self._do("reset", self.raw.reset, 0)

    def pause(self) -> None:
        self._do("pause", self.raw.suspend)

    def resume(self) -> None:
        self._do("resume", self.raw.resume)

    def undefine(self) -> None:
        """Undefine with its managed save, snapshot/checkpoint metadata and (UEFI) NVRAM."""
        basic = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        try:
            # NVRAM: a UEFI VM's variable store belongs to it and goes with it.
            # TPM: the swtpm state (/var/lib/libvirt/swtpm/UUID) too, whatever the backend's persistent_state.
            self.raw.undefineFlags(basic | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                                   | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
                                   | getattr(libvirt, "VIR_DOMAIN_UNDEFINE_TPM", 0))
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:  # a driver without those flags
                raise translate(err, f"delete {self.name}") from err
            self._do("delete", self.raw.undefineFlags, basic)

    # devices and settings
    # `context` starts the error message ("web1: add disk vdb"); the default names the call.
    def attach(self, device_xml: str, *, live: bool, config: bool, context: str | None = None) -> None:
        try:
            self.raw.attachDeviceFlags(device_xml, _affect(live, config))
        except libvirt.libvirtError as err:
            error = translate(err, context or f"attach to {self.name}")
            if live and err.get_error_code() in _HOTPLUG_CODES:
                error.cause = HOTPLUG_REFUSED  # libvirt changed nothing: the configuration alone may still take it
            raise error from err

    def detach(self, device_xml: str, *, live: bool, config: bool, context: str | None = None) -> None:
        _call(context or f"detach from {self.name}", self.raw.detachDeviceFlags, device_xml, _affect(live, config))

    def update_device(self, device_xml: str, *, live: bool, config: bool, force: bool = False,
                      context: str | None = None) -> None:
        flags = _affect(live, config) | (libvirt.VIR_DOMAIN_DEVICE_MODIFY_FORCE if force else 0)
        _call(context or f"update a device of {self.name}", self.raw.updateDeviceFlags, device_xml, flags)

    def metadata(self, namespace: str, *, live: bool) -> str | None:
        """The metadata element in `namespace` (live or config), None when the domain has none."""
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE if live else libvirt.VIR_DOMAIN_AFFECT_CONFIG
        try:
            return str(self.raw.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, namespace, flags))
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return None
            raise translate(err, f"{self.name}: metadata") from err

    def set_metadata(self, xml: str, key: str, namespace: str, *, live: bool) -> None:
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE if live else libvirt.VIR_DOMAIN_AFFECT_CONFIG
        self._do("metadata of", self.raw.setMetadata, libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml, key, namespace, flags)

    # external snapshots and block jobs (vm/snapshot_ops.py): vmdeck keeps the snapshot records itself,
    # so libvirt is always asked for NO_METADATA; the overlays exist beforehand (REUSE_EXT).
    def snapshot_external(self, snapshot_xml: str, *, with_memory: bool, quiesce: bool) -> None:
        flags = (libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
                 | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT)
        if not with_memory:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
        if quiesce:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
        self._do("snapshot", self.raw.snapshotCreateXML, snapshot_xml, flags)

    def block_commit(self, target: str, base: str, top: str, *, active: bool) -> None:
        """Start committing `top` down into `base` (an active commit when `top` is the image QEMU writes)."""
        flags = libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE if active else 0
        self._do(f"block commit {target} of", self.raw.blockCommit, target, base, top, 0, flags)

    def block_job(self, target: str) -> dict[str, int] | None:
        """The block job on `target` ({"cur", "end", ...}), None when there is none."""
        info: dict[str, int] = self._do(f"block job {target} of", self.raw.blockJobInfo, target, 0)
        return info or None

    def block_job_pivot(self, target: str) -> None:
        """Finish an active commit: QEMU switches to the base image."""
        self._do(f"pivot {target} of", self.raw.blockJobAbort, target, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)

    def block_resize(self, target: str, size_bytes: int) -> None:
        self._do(f"resize {target} of", self.raw.blockResize, target, size_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)

    # backups (vm/backup.py): libvirt's push-mode backup job and the checkpoints that make incrementals
    def start_paused(self) -> None:
        """Start QEMU with the guest's CPUs stopped (a shut-off VM's disks become readable by a backup job)."""
        self._do("start (paused)", self.raw.createWithFlags, libvirt.VIR_DOMAIN_START_PAUSED)

    def backup_begin(self, backup_xml: str, checkpoint_xml: str | None) -> None:
        """Start a push-mode backup job (returns at once; `job_stats` follows it), making the checkpoint too."""
        self._do("backup of", self.raw.backupBegin, backup_xml, checkpoint_xml, 0)

    def backup_job(self) -> tuple[str, int, int, str]:
        """(phase, bytes done, bytes total, error) of the VM's backup job: phase is "running", or how the
        last one ended ("completed", "failed", "cancelled"), or "none"."""
        stats = self._do("job stats of", self.raw.jobStats, 0)
        if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE:
            if stats.get("operation") != libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP:
                return "other", 0, 0, ""
            return "running", int(stats.get("disk_processed", 0)), int(stats.get("disk_total", 0)), ""
        done = self._do("job stats of", self.raw.jobStats, libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        if done.get("operation") != libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP:
            return "none", 0, 0, ""
        phase = {libvirt.VIR_DOMAIN_JOB_COMPLETED: "completed", libvirt.VIR_DOMAIN_JOB_CANCELLED: "cancelled"}.get(
            done.get("type", 0), "failed")
        if phase == "completed" and done.get("success") is False:
            phase = "failed"
        return (phase, int(done.get("disk_processed", 0)), int(done.get("disk_total", 0)),
                str(done.get("errmsg", "")))

    def checkpoint_names(self) -> list[str]:
        return [str(c.getName()) for c in self._do("checkpoints of", self.raw.listAllCheckpoints, 0)]

    def checkpoint_dirty_bytes(self, name: str) -> int:
        """Bytes written to the disks since checkpoint `name` (what an incremental from it copies; running VMs)."""
        checkpoint = self._do(f"checkpoint {name} of", self.raw.checkpointLookupByName, name, 0)
        xml = str(self._do(f"checkpoint {name} of", checkpoint.getXMLDesc, libvirt.VIR_DOMAIN_CHECKPOINT_XML_SIZE))
        return sum(int(size) for size in re.findall(r"""\bsize=['"](\d+)['"]""", xml))

    def delete_checkpoint(self, name: str, *, metadata_only: bool = False) -> None:
        """Drop checkpoint `name` (its bitmap merges into its parent's); metadata_only when its bitmap is gone."""
        flags = libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY if metadata_only else 0
        checkpoint = self._do(f"checkpoint {name} of", self.raw.checkpointLookupByName, name, 0)
        self._do(f"delete checkpoint {name} of", checkpoint.delete, flags)

    def set_memory(self, kib: int, *, live: bool, config: bool) -> None:
        self._do("balloon", self.raw.setMemoryFlags, kib, _affect(live, config))

    def set_vcpus(self, count: int, *, live: bool, config: bool) -> None:
        """Plug vCPUs in or out (live: up to the definition's maximum, <vcpu current=...>)."""
        self._do("set the vCPUs of", self.raw.setVcpusFlags, count, _affect(live, config))

    def pin_vcpu(self, vcpu: int, cpumap: tuple[bool, ...], *, live: bool, config: bool) -> None:
        self._do(f"pin vCPU {vcpu} of", self.raw.pinVcpuFlags, vcpu, cpumap, _affect(live, config))

    def pin_emulator(self, cpumap: tuple[bool, ...], *, live: bool, config: bool) -> None:
        self._do("pin the emulator of", self.raw.pinEmulator, cpumap, _affect(live, config))

    # console, input, guest
    def send_keys(self, codes: list[int], hold_ms: int) -> None:
        """Linux keycodes, pressed together for hold_ms."""
        self._do("send keys to", self.raw.sendKey, libvirt.VIR_KEYCODE_SET_LINUX, hold_ms, codes, len(codes), 0)

    def qemu_monitor(self, command_json: str) -> str:
        """A QMP command through libvirt's monitor passthrough (libvirt marks the VM tainted)."""
        return str(self._do("monitor command to", libvirt_qemu.qemuMonitorCommand, self.raw, command_json, 0))

    def agent_command(self, command_json: str, timeout: int, *, context: str = "agent") -> str:
        """A guest-agent command; GuestError when the agent does not answer (its reason says why)."""
        try:
            return str(libvirt_qemu.qemuAgentCommand(self.raw, command_json, timeout, 0))
        except libvirt.libvirtError as err:
            error = translate(err, f"{self.name}: {context}")
            if err.get_error_code() == libvirt.VIR_ERR_OPERATION_TIMEOUT:
                timed_out = GuestError(error.message)
                timed_out.reason, timed_out.libvirt_text, timed_out.cause = error.reason, error.libvirt_text, error.cause
                raise timed_out from err
            raise error from err

    def screenshot(self, screen: int = 0) -> tuple[str | None, bytes]:
        """(MIME type libvirt names, image bytes) of screen `screen`."""
        stream = Stream(self._do("screenshot of", self.raw.connect().newStream, 0), f"{self.name}: screenshot")
        try:
            mime = self._do("screenshot of", self.raw.screenshot, stream.raw, screen, 0)
            chunks: list[bytes] = []
            while True:
                chunk = stream.recv(256 * 1024)
                if chunk == b"":  # end of stream
                    break
                if chunk is not None:  # None: would block (not on a blocking stream)
                    chunks.append(chunk)
            stream.finish()
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                stream.raw.abort()
            raise
        return (str(mime) if mime else None), b"".join(chunks)

    def open_console(self, stream: Stream, *, force: bool) -> None:
        """Connect `stream` to the first serial console; force takes it over from another client."""
        self._do("console of", self.raw.openConsole, None, stream.raw,
                 libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else 0)

    # migration
    def migrate_live(self, dest_uri: str, *, migrate_uri: str | None, disks: list[str], context: str,
                     bandwidth_mib: int | None = None) -> None:
        """Peer-to-peer live migration to `dest_uri` (blocks until it ends); copies `disks` (targets).
        `bandwidth_mib` caps the copy at that many MiB/s."""
        flags, params = self._migrate_flags(migrate_uri)
        if bandwidth_mib:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = bandwidth_mib
        # Peer-to-peer: the source libvirtd talks to the destination's itself, so the move does
        # not depend on this client staying connected for the whole copy.
        flags |= libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
        if disks:
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = disks
        _call(context, self.raw.migrateToURI3, dest_uri, params, flags)

    def abort_job(self) -> bool:
        """Cancel the running job (a migration: the VM keeps running here); False when none was running."""
        try:
            self.raw.abortJob()
        except libvirt.libvirtError:
            return False  # it ended in between
        return True

    def migrate_offline(self, dest: Connection, *, migrate_uri: str | None, context: str) -> None:
        """Move the definition only, over this client's two connections."""
        flags, params = self._migrate_flags(migrate_uri)
        _call(context, self.raw.migrate3, dest.raw, params, flags | libvirt.VIR_MIGRATE_OFFLINE)

    def _migrate_flags(self, migrate_uri: str | None) -> tuple[int, dict[str, Any]]:
        flags = libvirt.VIR_MIGRATE_PERSIST_DEST
        if self.is_persistent():
            flags |= libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
        params: dict[str, Any] = {}
        if migrate_uri:
            params[libvirt.VIR_MIGRATE_PARAM_URI] = migrate_uri
        return flags, params


# -- the connection --------------------------------------------------------------------------------

LifecycleCallback = Callable[[Domain, str, int], None]


class Connection:
    """An open connection to one libvirtd."""

    def __init__(self, raw: libvirt.virConnect, uri: str) -> None:
        self.raw = raw
        self.uri = uri

    def _do(self, context: str, fn: Callable[..., T], *args: Any) -> T:
        return _call(context, fn, *args)

    # domains
    def lookup(self, name: str) -> Domain:
        """The domain `name`; NotFound naming the host when there is none."""
        try:
            return Domain(self.raw.lookupByName(name))
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise NotFound(f"no VM named {name!r} on {self.uri}") from err
            raise translate(err, name) from err

    def domains(self, *, active: bool = False, transient: bool = False) -> list[Domain]:
        flags = (libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE if active else 0) \
            | (libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT if transient else 0)
        return [Domain(d) for d in self._do("list VMs", self.raw.listAllDomains, flags)]

    def domain_stats(self, kinds: tuple[str, ...], *, active_only: bool = False, inactive_only: bool = False,
                     domains: list[Domain] | None = None) -> list[tuple[Domain, dict[str, Any]]]:
        """Bulk statistics ("state", "vcpu", "balloon", "cpu_total", "block") in one call.

        NOWAIT: a VM stuck in a long job is reported with what is known instead of stalling the call.
        """
        flags = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
        if domains is not None:
            records = self._do("domain stats", self.raw.domainListGetStats, [d.raw for d in domains],
                               _stats_flags(kinds), flags)
        else:
            if active_only:
                flags |= libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
            if inactive_only:
                flags |= libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_INACTIVE
            records = self._do("domain stats", self.raw.getAllDomainStats, _stats_flags(kinds), flags)
        return [(Domain(dom), dict(stats)) for dom, stats in records]

    def define(self, xml: str, *, validate: bool = False, context: str = "define") -> Domain:
        flags = libvirt.VIR_DOMAIN_DEFINE_VALIDATE if validate else 0
        return Domain(self._do(context, self.raw.defineXMLFlags, xml, flags))

    def restore(self, path: str, xml: str, *, running: bool = True, context: str = "restore") -> None:
        """Start a domain from saved memory state (`path`, libvirt's save format) with definition `xml`."""
        flags = libvirt.VIR_DOMAIN_SAVE_RUNNING if running else libvirt.VIR_DOMAIN_SAVE_PAUSED
        self._do(context, self.raw.restoreFlags, path, xml, flags)

    def create_transient(self, xml: str) -> Domain:
        return Domain(self._do("create", self.raw.createXML, xml, 0))

    # host facts
    def capabilities(self) -> str:
        return str(self._do("host capabilities", self.raw.getCapabilities))

    def info(self) -> tuple[str, int, int]:
        """(CPU arch, memory MiB, host CPUs)."""
        info = self._do("host info", self.raw.getInfo)
        return str(info[0]), int(info[1]), int(info[2])

    def hypervisor_version(self) -> int:
        return int(self._do("host version", self.raw.getVersion))

    def libvirt_version(self) -> int:
        return int(self._do("libvirt version", self.raw.getLibVersion))

    def hostname(self) -> str:
        return str(self._do("hostname", self.raw.getHostname))

    def driver(self) -> str:
        return str(self._do("driver", self.raw.getType))

    def cpu_stats(self) -> dict[str, int]:
        """All host CPUs together, in ns: "user", "kernel", "idle", "iowait" (virNodeGetCPUStats)."""
        stats = self._do("host CPU statistics", self.raw.getCPUStats, libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0)
        return {str(k): int(v) for k, v in stats.items()}

    def memory_stats(self) -> dict[str, int]:
        """Host memory in KiB: "total", "free", "buffers", "cached" (virNodeGetMemoryStats)."""
        stats = self._do("host memory statistics", self.raw.getMemoryStats, libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
        return {str(k): int(v) for k, v in stats.items()}

    def offers_domain_type(self, arch: str, virttype: str) -> bool:
        """Whether libvirt can describe `virttype` domains of `arch` here (a KVM-less host cannot)."""
        try:
            self.raw.getDomainCapabilities(None, arch, None, virttype, 0)
        except libvirt.libvirtError:
            return False
        return True

    # storage and networks
    def pool(self, name: str) -> StoragePool:
        """The storage pool `name` (NotFound when there is none)."""
        return StoragePool(self._do(f"storage pool {name}", self.raw.storagePoolLookupByName, name))

    def active_pools(self) -> list[StoragePool]:
        """Every running storage pool, in one call."""
        return [StoragePool(p) for p in self._do("storage pools", self.raw.listAllStoragePools,
                                                 libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)]

    def define_pool(self, xml: str) -> StoragePool:
        return StoragePool(self._do("define storage pool", self.raw.storagePoolDefineXML, xml, 0))

    def create_transient_pool(self, xml: str, *, build: bool = False) -> StoragePool:
        """A pool that lives until it is destroyed (no definition kept); `build` makes its folder first."""
        flags = libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD if build else 0
        return StoragePool(self._do("create storage pool", self.raw.storagePoolCreateXML, xml, flags))

    def volume_at(self, path: str) -> StorageVolume:
        """The volume whose file is `path` (NotFound when no pool has it)."""
        return StorageVolume(self._do(f"volume {path}", self.raw.storageVolLookupByPath, path))

    def networks(self) -> list[Network]:
        return [Network(n) for n in self._do("list networks", self.raw.listAllNetworks, 0)]

    def network(self, name: str) -> Network:
        """The network `name` (NotFound when there is none)."""
        return Network(self._do(f"network {name}", self.raw.networkLookupByName, name))

    def define_network(self, xml: str) -> Network:
        return Network(self._do("define network", self.raw.networkDefineXML, xml))

    def has_network(self, name: str) -> bool:
        try:
            self.raw.networkLookupByName(name)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                return False
            raise translate(err, f"network {name}") from err
        return True

    def new_stream(self, *, nonblocking: bool = False, context: str = "stream") -> Stream:
        return Stream(self._do(context, self.raw.newStream, libvirt.VIR_STREAM_NONBLOCK if nonblocking else 0), context)

    # the connection itself
    def is_alive(self) -> bool:
        try:
            return bool(self.raw.isAlive())
        except libvirt.libvirtError:
            return False

    def set_keepalive(self, interval: int, count: int) -> None:
        # Best effort: a remote driver without keepalive support is still usable.
        with contextlib.suppress(libvirt.libvirtError):
            self.raw.setKeepAlive(interval, count)

    def close(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self.raw.close()

    def on_lifecycle(self, callback: LifecycleCallback) -> int:
        """Call `callback(domain, event, detail)` on libvirt's event thread for every lifecycle event.

        `event` is a word: defined, undefined, started, suspended, resumed, stopped, shutdown,
        pmsuspended, crashed (or "event-N" for one this libvirt adds later). Returns the callback id.
        """
        def relay(_conn: libvirt.virConnect, dom: libvirt.virDomain, event: int, detail: int, _opaque: object) -> None:
            callback(Domain(dom), _LIFECYCLE_EVENTS.get(event, f"event-{event}"), detail)

        return int(self._do("register for events", self.raw.domainEventRegisterAny, None,
                            libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, relay, None))

    def on_device_change(self, callback: Callable[[Domain], None]) -> list[int]:
        """Call `callback(domain)` when a VM changes without a state change: a device added or removed,
        media ejected or inserted, a disk source changed, the balloon moved, its metadata rewritten.
        Returns the callback ids."""
        def relay(_conn: libvirt.virConnect, dom: libvirt.virDomain, *_args: object) -> None:
            callback(Domain(dom))

        return [int(self._do("register for events", self.raw.domainEventRegisterAny, None, event_id, relay, None))
                for event_id in (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                 libvirt.VIR_DOMAIN_EVENT_ID_TRAY_CHANGE, libvirt.VIR_DOMAIN_EVENT_ID_DISK_CHANGE,
                                 libvirt.VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
                                 # vmdeck's own metadata (the project) changed: the server answers from memory
                                 libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE)]

    def remove_callback(self, callback_id: int) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self.raw.domainEventDeregisterAny(callback_id)


def open_connection(uri: str) -> Connection:
    """Open `uri`; HostError when libvirtd is not there."""
    try:
        raw = libvirt.open(uri)
    except libvirt.libvirtError as err:
        detail = (err.get_error_message() or str(err)).strip().splitlines()[0]
        error = HostError(f"cannot connect to libvirt at {uri} (is libvirtd running?): {detail}")
        error.reason, error.libvirt_text = _REASONS.get(err.get_error_code() or 0), detail
        raise error from err
    return Connection(raw, uri)


# -- the event loop --------------------------------------------------------------------------------

_loop_lock = threading.Lock()
_loop_started = False


def ensure_event_loop() -> None:
    """Register libvirt's default event loop and run it in a daemon thread, once per process.

    Domain events and non-blocking streams need it registered *before* the connections that
    use them are opened.
    """
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _loop_started = True


def add_fd_watch(fd: int, callback: Callable[[int], None]) -> int:
    """Call `callback(fd)` on libvirt's event thread whenever `fd` is readable; returns the watch id."""
    def relay(_watch: int, watched_fd: int, _events: int, _opaque: object) -> None:
        callback(watched_fd)

    return int(libvirt.virEventAddHandle(fd, libvirt.VIR_EVENT_HANDLE_READABLE, relay, None))


def remove_fd_watch(watch: int) -> None:
    libvirt.virEventRemoveHandle(watch)

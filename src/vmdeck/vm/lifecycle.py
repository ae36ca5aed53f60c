"""Power verbs on an existing VM: start, shutdown, poweroff, reboot, reset, pause, resume, delete.

Each verb checks the state it needs first (StateError says both states), and
each long wait has a deadline and reports progress.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import libvirt

from vmdeck.errors import GuestError, StateError
from vmdeck.host.connection import Host, libvirt_errors
from vmdeck.vm.state import ACTIVE, current_state, require_state

# The XML parser (lxml), storage and agent modules are imported inside the verbs that use them:
# `vmdeck start NAME` is a bare libvirt call and its command must start quickly (docs/PERFORMANCE.md).

__all__ = ["start", "wait_ready", "shutdown", "poweroff", "reboot", "reset", "pause", "resume", "delete",
           "READY_MARKER"]

READY_MARKER = "VMDECK-READY"
Progress = Callable[[str], None]


def wait_ready(host: Host, name: str, timeout: float = 120.0, progress: Progress = lambda _m: None) -> float:
    """Wait until the guest says it is ready: the marker on its serial console, or its agent answering."""
    from vmdeck.domxml.parse import parse_domain
    from vmdeck.vm.agent import agent_ping

    dom = host.lookup(name)
    started = time.monotonic()
    view = parse_domain(dom.XMLDesc(0))
    # The serial log is a file on the VM's host: only readable when that host is this machine.
    log = Path(view.serial_log) if view.serial_log and host.is_local else None
    has_agent = view.has_agent_channel
    if log is None and not has_agent:
        raise GuestError(f"VM {name!r} has neither a serial log nor a guest agent: cannot tell when it is ready")
    progress(f"waiting for {name} to be ready (up to {timeout:g} s)")
    while time.monotonic() - started < timeout:
        state = current_state(dom)
        if state not in ACTIVE:
            raise StateError(name, state, "running", "wait for")
        if log is not None:
            with contextlib.suppress(OSError):
                if READY_MARKER in log.read_text(errors="replace"):
                    return time.monotonic() - started
        if has_agent and agent_ping(dom, timeout=1):
            return time.monotonic() - started
        time.sleep(0.1)
    raise GuestError(f"VM {name!r} did not become ready within {timeout:g} s")


def start(host: Host, name: str, *, wait: bool = False, timeout: float = 120.0,
          progress: Progress = lambda _m: None) -> None:
    dom = host.lookup(name)
    require_state(dom, {"shut off", "crashed"}, "start")
    with libvirt_errors(f"start {name}"):
        dom.create()
    if wait:
        wait_ready(host, name, timeout, progress)


def _wait_shut_off(dom: libvirt.virDomain, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if current_state(dom) == "shut off":
            return True
        time.sleep(0.2)
    return current_state(dom) == "shut off"


def shutdown(host: Host, name: str, *, timeout: float = 60.0, force: bool = False,
             progress: Progress = lambda _m: None) -> str:
    """ACPI power button, wait; then, if asked, pull the plug. Returns how it ended."""
    dom = host.lookup(name)
    require_state(dom, {"running", "blocked", "shutting down"}, "shut down")
    progress(f"pressing the ACPI power button of {name}; waiting up to {timeout:g} s")
    with libvirt_errors(f"shutdown {name}"):
        dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    if _wait_shut_off(dom, timeout):
        return "shut down by the guest"
    if not force:
        raise GuestError(f"VM {name!r} did not shut down within {timeout:g} s (use --force to power it off)")
    progress(f"{name} ignored the power button: forcing power off")
    poweroff(host, name)
    return "forced off"


def poweroff(host: Host, name: str) -> None:
    dom = host.lookup(name)
    require_state(dom, ACTIVE, "power off")
    with libvirt_errors(f"poweroff {name}"):
        dom.destroy()


def reboot(host: Host, name: str) -> None:
    """Ask the guest to reboot (ACPI), as pressing the power button then restarting would."""
    dom = host.lookup(name)
    require_state(dom, {"running"}, "reboot")
    with libvirt_errors(f"reboot {name}"):
        dom.reboot(libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)


def reset(host: Host, name: str) -> None:
    """The reset button: immediate, no guest cooperation."""
    dom = host.lookup(name)
    require_state(dom, {"running", "paused", "blocked"}, "reset")
    with libvirt_errors(f"reset {name}"):
        dom.reset(0)


def pause(host: Host, name: str) -> None:
    dom = host.lookup(name)
    require_state(dom, {"running", "blocked"}, "pause")
    with libvirt_errors(f"pause {name}"):
        dom.suspend()


def resume(host: Host, name: str) -> None:
    dom = host.lookup(name)
    require_state(dom, {"paused"}, "resume")
    with libvirt_errors(f"resume {name}"):
        dom.resume()


def delete(host: Host, name: str, *, force: bool = False, keep_disks: bool = False,
           progress: Progress = lambda _m: None) -> list[str]:
    """Undefine the VM and delete the volumes vmdeck created for it (never ISOs or user images)."""
    from vmdeck.domxml.parse import parse_domain
    from vmdeck.storage.pool import delete_volume

    dom = host.lookup(name)
    state = current_state(dom)
    if state in ACTIVE:
        if not force:
            raise StateError(name, state, "shut off", "delete (use --force to power it off first)")
        progress(f"powering off {name}")
        with libvirt_errors(f"poweroff {name}"):
            dom.destroy()
    view = parse_domain(dom.XMLDesc(0))
    basic = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    with libvirt_errors(f"delete {name}"):
        try:
            # NVRAM: a UEFI VM's variable store belongs to it and goes with it.
            dom.undefineFlags(basic | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                              | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:  # a driver without those flags
                raise
            dom.undefineFlags(basic)
    removed: list[str] = []
    if not keep_disks:
        for path in view.owned_volumes:
            progress(f"deleting volume {path}")
            delete_volume(host, path)
            removed.append(path)
    return removed

"""Power verbs on an existing VM: start, shutdown, poweroff, reboot, reset, pause, resume, delete.

Each verb checks the state it needs first (vmdeck.vm.state.POWER_VERBS, StateError
says both states), and each long wait has a deadline and reports progress.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from vmdeck.errors import GuestError, NotFound, StateError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Domain
from vmdeck.vm.state import ACTIVE, POWER_VERBS, VmState, current_state, require_verb

# The XML parser (lxml), storage and agent modules are imported inside the verbs that use them:
# `vmdeck start NAME` is a bare libvirt call and its command must start quickly (docs/PERFORMANCE.md).

__all__ = ["power", "power_cycle", "start", "wait_ready", "shutdown", "poweroff", "reboot", "reset", "pause", "resume", "delete",
           "READY_MARKER"]

READY_MARKER = "VMDECK-READY"
Progress = Callable[[str], None]


# How long after the ready marker to wait for a guest agent that has a channel but is still starting.
AGENT_GRACE_S = 60.0


def wait_ready(host: Host, name: str, timeout: float = 120.0, progress: Progress = lambda _m: None) -> float:
    """Wait until the guest is ready: its agent answering, else the marker on its serial console; and for a
    VM made from an image, what its user waits for: cloud-init finished and SSH answering (vm/sshready.py)."""
    from vmdeck.domxml.parse import parse_domain
    from vmdeck.vm.agent import agent_ping
    from vmdeck.vm.sshready import ssh_gate, wait_reachable

    dom = host.lookup(name)
    started = time.monotonic()
    view = parse_domain(dom.xml())
    # The serial log is a file on the VM's host: only readable when that host is this machine.
    log = Path(view.serial_log) if view.serial_log and host.is_local else None
    has_agent = view.has_agent_channel
    if log is None and not has_agent:
        raise GuestError(f"VM {name!r} has neither a serial log nor a guest agent: cannot tell when it is ready")
    progress(f"waiting for {name} to be ready (up to {timeout:g} s)")
    marker_seen_at: float | None = None
    ready_at: float | None = None
    while ready_at is None and time.monotonic() - started < timeout:
        state = current_state(dom)
        if state not in ACTIVE:
            raise StateError(name, state, "running", "wait for")
        if log is not None and marker_seen_at is None:
            with contextlib.suppress(OSError):
                if READY_MARKER in log.read_text(errors="replace"):
                    marker_seen_at = time.monotonic()
        if has_agent and agent_ping(dom, timeout=1):
            ready_at = time.monotonic()
        # The guest agent starts a moment after the marker: a caller that was told "ready" runs
        # `exec` next, so give the agent a grace period before settling for the marker alone.
        elif marker_seen_at is not None and (not has_agent or time.monotonic() - marker_seen_at > AGENT_GRACE_S):
            ready_at = marker_seen_at
        else:
            time.sleep(0.1)
    if ready_at is None:
        raise GuestError(f"VM {name!r} did not become ready within {timeout:g} s")
    gate = ssh_gate(host, dom, view)
    if gate is None:
        return ready_at - started
    return wait_reachable(host, name, timeout, progress, gate=gate, started=started)


def power(host: Host, name: str, verb: str) -> str | None:
    """Use power verb `verb` (a key of POWER_VERBS) on VM `name`, after checking the state it needs.

    Returns what happened when it differs from the verb's usual outcome: a reboot of a VM with changes
    waiting for its next boot is a power cycle (see power_cycle), and says so."""
    dom = host.lookup(name)
    require_verb(dom, verb)
    if verb == "reboot":
        from vmdeck.vm.pending import read_pending

        pending = read_pending(dom)
        if pending:
            return power_cycle(host, name, pending)
    POWER_VERBS[verb].act(dom)
    return None


# How long a power cycle waits for the guest to shut down before pulling the plug.
POWER_CYCLE_SHUTDOWN_S = 120.0


def power_cycle(host: Host, name: str, pending: dict[str, object], *,
                timeout: float = POWER_CYCLE_SHUTDOWN_S) -> str:
    """Shut the VM down (ACPI; powered off when the guest ignores it within `timeout`), then start it:
    a guest's own reboot keeps QEMU's process and with it the running definition, so the values saved
    for the next boot (`pending`) only take effect through a new process."""
    dom = host.lookup(name)
    dom.shutdown()
    how = "shut down"
    if not _wait_shut_off(dom, timeout):
        with contextlib.suppress(StateError):
            poweroff(host, name)
        how = "powered off (it ignored the power button)"
        _wait_shut_off(dom, 30)
    dom.start()
    words = {"vcpus": "{} vCPU", "memory_mib": "{} MiB"}
    applied = ", ".join(words.get(key, key + " {}").format(value) for key, value in pending.items())
    return f"{how} and started again with {applied}"


def start(host: Host, name: str, *, wait: bool = False, timeout: float = 120.0,
          progress: Progress = lambda _m: None) -> None:
    power(host, name, "start")
    if wait:
        wait_ready(host, name, timeout, progress)


def _wait_shut_off(dom: Domain, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if current_state(dom) == VmState.SHUT_OFF:
            return True
        time.sleep(0.2)
    return current_state(dom) == VmState.SHUT_OFF


def shutdown(host: Host, name: str, *, timeout: float = 60.0, force: bool = False,
             progress: Progress = lambda _m: None) -> str:
    """ACPI power button, wait; then, if asked, pull the plug. Returns how it ended."""
    dom = host.lookup(name)
    require_verb(dom, "shutdown")
    progress(f"pressing the ACPI power button of {name}; waiting up to {timeout:g} s")
    dom.shutdown()
    if _wait_shut_off(dom, timeout):
        return "shut down by the guest"
    if not force:
        raise GuestError(f"VM {name!r} did not shut down within {timeout:g} s (use --force to power it off)")
    progress(f"{name} ignored the power button: forcing power off")
    poweroff(host, name)
    return "forced off"


def poweroff(host: Host, name: str) -> None:
    power(host, name, "poweroff")


def reboot(host: Host, name: str) -> str | None:
    """Ask the guest to reboot (ACPI); a power cycle when changes wait for the next boot."""
    return power(host, name, "reboot")


def reset(host: Host, name: str) -> None:
    """The reset button: immediate, no guest cooperation."""
    power(host, name, "reset")


def pause(host: Host, name: str) -> None:
    power(host, name, "pause")


def resume(host: Host, name: str) -> None:
    power(host, name, "resume")


def _still_read_by_others(host: Host, xml: str) -> dict[str, str]:
    """Owned images another VM still reads (a linked clone's backing file): path -> the VM that inherits it.

    Only a VM whose images took part in snapshots or clones can have such images, so only then is the
    host's storage scanned. The image's ownership passes to a VM that reads it, so it is deleted with the
    last of them: deleting a linked clone's source never breaks the clone.
    """
    from vmdeck.domxml.parse import parse_domain
    from vmdeck.domxml.snapshots import read_tree
    from vmdeck.storage.usage import image_usage
    from vmdeck.vm.snapshot_ops import save_tree, snapshot_tree

    if not host.is_local or not read_tree(xml).created_files:
        return {}
    usage = image_usage(host)  # the VM is undefined by now: what is left is other VMs' use
    heirs: dict[str, str] = {}
    for path in parse_domain(xml).owned_volumes:
        users = sorted(usage.vms_using(path))
        if not users:
            continue
        heir = host.lookup(users[0])
        save_tree(heir, snapshot_tree(heir).with_files(add=(path,)), owned_add=(path,))
        heirs[path] = users[0]
    return heirs


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
        dom.poweroff()
    xml = dom.xml()
    view = parse_domain(xml)
    saved = dom.xml(inactive=True, secure=True)
    dom.undefine()
    _started_meanwhile(host, name, saved)
    removed: list[str] = []
    if not keep_disks:
        shared = _still_read_by_others(host, xml)
        for path in view.owned_volumes:
            if path in shared:
                progress(f"keeping {path}: VM {shared[path]} still reads it (it belongs to that VM now)")
                continue
            progress(f"deleting volume {path}")
            delete_volume(host, path)
            removed.append(path)
    return removed


def _started_meanwhile(host: Host, name: str, saved_xml: str) -> None:
    """A start racing the delete can win between the state check and the undefine: libvirt then keeps
    the running VM as a transient one. Give it back its definition and report the conflict, so its
    disks are not deleted under it."""
    try:
        dom = host.lookup(name)
    except NotFound:
        return
    if not dom.is_active():
        return
    host.conn.define(saved_xml, context=f"delete {name}")
    raise StateError(name, "running", "shut off", "delete (it was started meanwhile)")

"""VM run states as users read them, and guards for verbs that need one."""

from __future__ import annotations

import libvirt

from vmdeck.errors import StateError
from vmdeck.host.connection import libvirt_errors

__all__ = ["STATE_NAMES", "state_name", "current_state", "require_state"]

STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "no state",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}
# States in which a QEMU process exists.
ACTIVE = {"running", "blocked", "paused", "shutting down", "suspended"}


def state_name(code: int) -> str:
    return STATE_NAMES.get(code, f"unknown ({code})")


def current_state(dom: libvirt.virDomain) -> str:
    with libvirt_errors(dom.name()):
        return state_name(dom.state()[0])


def require_state(dom: libvirt.virDomain, allowed: set[str], action: str) -> str:
    """The VM's state, or StateError naming both what it is and what `action` needs."""
    state = current_state(dom)
    if state not in allowed:
        raise StateError(dom.name(), state, " or ".join(sorted(allowed)), action)
    return state

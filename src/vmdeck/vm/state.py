"""VM run states, the power verbs, what each state allows: the one copy of these rules.

The CLI's commands, the API's routes (and the `allowed_actions` it sends with every
VM) and the web pages' buttons all come from `POWER_VERBS` here. Every other rule about
states (may it be migrated live, has it a screen, may it be snapshotted ...) is a predicate
of `VmState` below, and the API sends them with each VM as `can` (`capabilities`): no
module and no page keeps its own set of state names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from vmdeck.errors import StateError
from vmdeck.host.libvirt_api import STATE_NAMES, Domain, state_name

__all__ = ["VmState", "ACTIVE", "ACTIVE_STATES", "LIVE_STATES", "STOPPED_STATES", "capabilities",
           "PowerVerb", "POWER_VERBS", "STATE_NAMES", "state_name",
           "to_state", "allowed_actions", "current_state", "require_state", "require_verb"]


class VmState(StrEnum):
    """A VM's state in the words libvirt's tools use (`virsh domstate`); compares equal to those strings."""

    NO_STATE = "no state"
    RUNNING = "running"
    BLOCKED = "blocked"
    PAUSED = "paused"
    SHUTTING_DOWN = "shutting down"
    SHUT_OFF = "shut off"
    CRASHED = "crashed"
    SUSPENDED = "suspended"  # to RAM by the guest (S3, pmsuspended)

    @property
    def active(self) -> bool:
        """A QEMU process exists."""
        return self in ACTIVE_STATES

    @property
    def live(self) -> bool:
        """QEMU runs the guest, or holds it paused: its screen, serial line, memory, monitor and block jobs
        can be reached (a guest suspended to RAM or shutting down is not counted on for them)."""
        return self in LIVE_STATES

    @property
    def stopped(self) -> bool:
        """No QEMU process, and a definition to start again from (shut off, or crashed)."""
        return self in STOPPED_STATES

    @property
    def has_console(self) -> bool:
        """A screenshot, the display and the serial console can be reached."""
        return self.live

    @property
    def may_migrate_live(self) -> bool:
        return self.live

    @property
    def may_migrate_offline(self) -> bool:
        return self.stopped

    @property
    def may_snapshot(self) -> bool:
        """Disks only: of a live VM (its overlays switched under it) or of a shut-off one."""
        return self.live or self is VmState.SHUT_OFF

    @property
    def may_snapshot_memory(self) -> bool:
        """With --memory or --quiesce: the guest must be live."""
        return self.live

    @property
    def may_back_up(self) -> bool:
        """Through libvirt's backup job: a live VM, or a shut-off one (started paused for it)."""
        return self.live or self is VmState.SHUT_OFF

    @property
    def may_sample(self) -> bool:
        """CPU, memory and I/O statistics of a guest that runs (or is paused, counting nothing)."""
        return self.live


ACTIVE_STATES = frozenset({VmState.RUNNING, VmState.BLOCKED, VmState.PAUSED, VmState.SHUTTING_DOWN,
                           VmState.SUSPENDED})
# The same set as plain strings, for callers that hold a state name.
ACTIVE = {str(s) for s in ACTIVE_STATES}
LIVE_STATES = frozenset({VmState.RUNNING, VmState.BLOCKED, VmState.PAUSED})
STOPPED_STATES = frozenset({VmState.SHUT_OFF, VmState.CRASHED})
# What the API tells a page a VM may do now (the VM's "can"), by name.
_CAPABILITIES = ("active", "has_console", "may_migrate_live", "may_migrate_offline", "may_snapshot",
                 "may_snapshot_memory", "may_sample")


def capabilities(state: str) -> dict[str, bool]:
    """{"console": .., "migrate_live": .., "migrate_offline": .., "snapshot": .., "snapshot_memory": ..,
    "sample": .., "active": ..} for a VM in `state`: what the pages offer."""
    known = to_state(state)
    return {name.removeprefix("may_").removeprefix("has_"): bool(getattr(known, name)) for name in _CAPABILITIES}


def to_state(name: str) -> VmState:
    """The VmState for a state name; one libvirt added after this code reads as "no state"."""
    try:
        return VmState(name)
    except ValueError:
        return VmState.NO_STATE


@dataclass(frozen=True)
class PowerVerb:
    name: str  # the CLI command and the API route: "poweroff"
    needs: frozenset[VmState]  # the states it may be used in
    phrase: str  # for "cannot <phrase> VM 'x'": "power off"
    done: str  # what happened, in the API's `result`: "powered off"
    outcome: str  # the same for a person, with {name}: "{name} powered off"
    help: str
    act: Callable[[Domain], None]  # the libvirt call, through the boundary


POWER_VERBS: dict[str, PowerVerb] = {verb.name: verb for verb in (
    PowerVerb("start", frozenset({VmState.SHUT_OFF, VmState.CRASHED}), "start", "started", "{name} started",
              "Start (power on) a VM.", Domain.start),
    PowerVerb("shutdown", frozenset({VmState.RUNNING, VmState.BLOCKED, VmState.SHUTTING_DOWN}), "shut down",
              "shut down", "{name} shut down", "Shut a VM down through ACPI (the guest's own power-button handling).",
              Domain.shutdown),
    PowerVerb("poweroff", ACTIVE_STATES, "power off", "powered off", "{name} powered off",
              "Power a VM off at once (pull the plug).", Domain.poweroff),
    PowerVerb("reboot", frozenset({VmState.RUNNING}), "reboot", "reboot requested", "{name}: reboot requested",
              "Ask the guest to reboot (ACPI).", Domain.reboot),
    PowerVerb("reset", frozenset({VmState.RUNNING, VmState.PAUSED, VmState.BLOCKED}), "reset", "reset",
              "{name} reset", "Press the reset button (no guest cooperation).", Domain.reset),
    PowerVerb("pause", frozenset({VmState.RUNNING, VmState.BLOCKED}), "pause", "paused", "{name} paused",
              "Pause a running VM (its vCPUs stop; memory stays).", Domain.pause),
    PowerVerb("resume", frozenset({VmState.PAUSED}), "resume", "resumed", "{name} resumed", "Resume a paused VM.",
              Domain.resume),
)}


def allowed_actions(state: str) -> list[str]:
    """The power verbs a VM in `state` accepts, then "delete" (always: with force when it runs)."""
    known = to_state(state)
    return [verb.name for verb in POWER_VERBS.values() if known in verb.needs] + ["delete"]


def current_state(dom: Domain) -> VmState:
    return to_state(dom.state()[0])


def require_state(dom: Domain, allowed: set[str] | frozenset[VmState], action: str) -> VmState:
    """The VM's state, or StateError naming both what it is and what `action` needs."""
    state = current_state(dom)
    if state not in allowed:
        raise StateError(dom.name, state, " or ".join(sorted(str(s) for s in allowed)), action)
    return state


def require_verb(dom: Domain, verb: str) -> VmState:
    """The VM's state when `verb` may be used in it, else StateError."""
    power = POWER_VERBS[verb]
    return require_state(dom, power.needs, power.phrase)

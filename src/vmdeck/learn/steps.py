"""The Learn tour's steps: their order, the role each needs, and what each result holds (core layer).

A step that only reads the host view needs a viewer; one that acts on the VM needs the role of the
action it performs (exec and balloon: operator; a hot-plugged disk: manager), the same roles the
policy table gives those actions elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Step", "STEPS", "STEP_IDS", "StepResult", "step"]


@dataclass(frozen=True)
class Step:
    id: str
    need: str  # viewer | operator | manager
    acts: bool  # changes the VM while it runs (and undoes it)
    hostview: str  # the host-view section the numbers come from (an anchor on the VM page)


STEPS: tuple[Step, ...] = (
    Step("process", "viewer", False, "process"),
    Step("vcpu", "operator", True, "sched"),
    Step("sched", "operator", True, "sched"),
    Step("memory", "operator", True, "memory"),
    Step("storage", "manager", True, "storage"),
    Step("cpumode", "viewer", False, "cpumode"),
    Step("cdrom", "operator", True, "devices"),
    Step("hotplug", "manager", True, "devices"),
)
STEP_IDS = tuple(s.id for s in STEPS)


def step(step_id: str) -> Step:
    for candidate in STEPS:
        if candidate.id == step_id:
            return candidate
    from vmdeck.errors import NotFound

    raise NotFound(f"no Learn step named {step_id!r}: one of {', '.join(STEP_IDS)}")


@dataclass
class StepResult:
    """What one experiment measured. `before`/`after` hold numbers and names (units in the keys);
    `happened` says whether the change the step predicts was seen; `skipped` names why a step could
    not run on this VM or host (e.g. "one_vcpu"), as a catalog key the page translates."""

    step: str
    vm: str
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    happened: bool = False
    skipped: str | None = None
    cleaned_up: bool = True
    duration_s: float = 0.0

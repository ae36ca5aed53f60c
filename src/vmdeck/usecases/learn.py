"""Running one step of the Learn tour on a VM (use-case layer).

The step itself is vmdeck.learn.experiments; every change it makes to the VM goes through the same use case
as that change anywhere else (vmdeck.usecases.tuning for pinning and the balloon, vmdeck.usecases.devices for
the scratch disk and the CD), so it is checked, charged (the scratch disk counts against the project's disk
quota while it exists) and audited exactly like `vmdeck pin|balloon|disk add|cdrom insert` or the API's
routes. The step also gets a line of its own (vm.learn) with its outcome.
"""

from __future__ import annotations

from pathlib import Path

from vmdeck.host.connection import Host
from vmdeck.learn.steps import StepResult
from vmdeck.store.tenancy import role_rank
from vmdeck.usecases import devices, tuning
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.permissions import NotPermitted, authorize
from vmdeck.usecases.services import Services

__all__ = ["run_step"]


def run_step(svc: Services, actor: Actor, host: Host, name: str, step_id: str) -> StepResult:
    """Run Learn step `step_id` on running VM `name` and undo it. Reading the tour needs a viewer; a step
    that acts needs the role of what it does (vmdeck.learn.steps), refused before anything runs."""
    from vmdeck.learn.experiments import Acts
    from vmdeck.learn.experiments import run_step as run
    from vmdeck.learn.steps import step

    chosen = step(step_id)  # NotFound for a step that does not exist, before any line
    project = project_of_vm(svc, actor, "vm.learn", host, name)
    with audited(svc, actor, "vm.learn", project, name):
        authorize(actor, "vm.learn", project)
        if not actor.admin and role_rank(actor.role) < role_rank(chosen.need):
            raise NotPermitted(f"the Learn step {chosen.id!r} acts on the VM: it needs the {chosen.need} role")
        acts = Acts(
            pin_vcpu=lambda vcpu, cpus: tuning.pin_vcpu(svc, actor, host, name, vcpu, cpus),
            set_balloon=lambda mib: tuning.set_balloon(svc, actor, host, name, mib),
            add_disk=lambda gib: devices.add_disk(svc, actor, host, name, gib),
            remove_disk=lambda target: devices.remove_disk(svc, actor, host, name, target, delete_volume=True),
            insert_media=lambda iso: devices.insert_media(svc, actor, host, name, Path(iso)),
            eject_media=lambda: devices.eject_media(svc, actor, host, name),
        )
        result = run(host, name, chosen.id, acts)
    return result

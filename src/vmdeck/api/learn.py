"""REST endpoints of the Learn tour (api layer): which steps the caller may run on a VM, and running one.

The route itself needs a viewer of the VM (policy "vm.learn"); a step that acts needs the role of what
it does (vmdeck.learn.steps), so a viewer reads the tour's explanations and numbers but cannot pin, balloon
or hot-plug. A step runs through vmdeck.usecases.learn: its changes are checked, charged and audited as the
same changes through their own routes.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends

from vmdeck.api.actors import request_actor, request_services
from vmdeck.api.context import request_host
from vmdeck.api.policy import Grant, grant_of, may
from vmdeck.host.connection import Host
from vmdeck.learn.steps import STEPS
from vmdeck.usecases import Actor, Services
from vmdeck.usecases.learn import run_step

__all__ = ["router"]

router = APIRouter(prefix="/api/vms", tags=["learn"])


def _allowed(grant: Grant, need: str) -> bool:
    return grant.principal is not None and may(grant.principal, need, grant.project)


@router.get("/{name}/learn")
def learn_steps(name: str, grant: Grant = Depends(grant_of)) -> dict[str, Any]:
    """The tour's steps in order, with the role each needs and whether the caller may run it."""
    return {"vm": name, "steps": [{**asdict(s), "allowed": _allowed(grant, s.need)} for s in STEPS]}


@router.post("/{name}/learn/{step_id}")
def learn_run(name: str, step_id: str, host: Host = Depends(request_host), grant: Grant = Depends(grant_of),
              actor: Actor = Depends(request_actor), services: Services = Depends(request_services)
              ) -> dict[str, Any]:
    """Run one experiment on the running VM and undo it; before/after numbers from the host view."""
    result = asdict(run_step(services, actor, host, name, step_id))
    if step_id == "process" and not (grant.principal is not None and grant.principal.admin):
        # Host paths stay with the host's administrator: a tenant sees file names, not where they live.
        result["before"]["cmdline"] = [_redact(arg) for arg in result["before"].get("cmdline", [])]
    return result


def _redact(arg: str) -> str:
    import re

    return re.sub(r"/(?:[\w.+-]+/)+([\w.+-]+)", r".../\1", arg)

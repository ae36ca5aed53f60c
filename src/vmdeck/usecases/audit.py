"""The one audit line of a use case, with its outcome, whichever door it came through (use-case layer)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.common import vm_project
from vmdeck.usecases.permissions import NotPermitted
from vmdeck.usecases.services import Services

__all__ = ["audited", "project_of_vm"]


@contextlib.contextmanager
def audited(svc: Services, actor: Actor, action: str, project: str | None, vm: str | None, *,
            status: int = 200) -> Iterator[None]:
    """Record one line for the body: `status` and "ok" when it succeeds, the error's status and kind when it
    fails (a quota refusal is 409 quota_exceeded, as the caller sees it). A policy refusal is logged without
    the project: a foreign VM's project must not reach the caller's managers."""
    def record(code: int, result: str, where: str | None) -> None:
        svc.audit.record(actor.user, actor.via or actor.origin, where, action, vm, actor.target, code, result)
        actor.recorded = True

    try:
        yield
    except NotPermitted as refused:
        record(refused.http_status, f"refused: {refused.message}", None)
        raise
    except VmdeckError as error:
        record(error.http_status, f"{error.kind}: {error.message}", project)
        raise
    except Exception as error:
        record(500, f"internal: {type(error).__name__}", project)
        raise
    else:
        record(status, "ok", project)


def project_of_vm(svc: Services, actor: Actor, action: str, host: Host, name: str) -> str | None:
    """The project of VM `name` (vmdeck.usecases.common.vm_project), for the audit line and the checks; a VM
    that is not there is a refusal logged as the API's policy logs it (no project, no VM)."""
    try:
        return vm_project(actor, host, name)
    except VmdeckError as refused:
        svc.audit.record(actor.user, actor.via or actor.origin, None, action, None, actor.target,
                         refused.http_status, f"refused: {refused.message}")
        actor.recorded = True
        raise

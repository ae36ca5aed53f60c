"""Who may do which change: the least role each mutating action needs (use-case layer).

The action names are the API's (vmdeck.api.policy.POLICY, which also routes each request to its
action and answers 404 for what a caller cannot see); tests/unit/test_usecases_policy.py checks that the
two tables agree. Here the rule holds for every door, the CLI and the scheduler included.
"""

from __future__ import annotations

import dataclasses

from vmdeck.errors import VmdeckError
from vmdeck.store.tenancy import role_rank
from vmdeck.usecases.actor import Actor

__all__ = ["ACTION_NEEDS", "NotPermitted", "authorize", "authorize_in"]

ACTION_NEEDS: dict[str, str] = {
    "vm.create": "manager", "vm.delete": "manager", "vm.resize": "manager", "vm.devices": "manager",
    "vm.snapshot": "manager", "vm.clone": "manager", "vm.import": "manager",
    "vm.power": "operator", "vm.media": "operator", "vm.exec": "operator", "vm.keys": "operator",
    "vm.screenshot": "viewer", "vm.tune": "operator", "vm.forwards": "operator", "vm.learn": "viewer",
    "vm.migrate": "admin", "vm.adopt": "admin", "host.manage": "admin", "image.manage": "admin",
    "iso.upload": "manager", "iso.delete": "manager",
    "backup.create": "operator", "backup.manage": "manager", "backup.restore": "manager",
    "backup.export": "admin", "backup.import": "admin",  # a file at a host path: the host's administrator
    "network.manage": "manager",  # a project's own network: create, delete, reserve an address on it
    "project.manage": "admin",
}


class NotPermitted(VmdeckError):
    http_status = 403
    kind = "forbidden"


def authorize(actor: Actor, action: str, project: str | None) -> None:
    """NotPermitted (403) unless `actor` has the role `action` needs in `project`."""
    need = ACTION_NEEDS[action]
    if actor.admin:
        return
    if need == "admin" or role_rank(actor.role) < role_rank(need):
        where = f" in project {project}" if project else ""
        raise NotPermitted(f"{action} needs {need}{where}; you are {actor.role or 'no role'}")


def authorize_in(actor: Actor, action: str, project: str | None) -> None:
    """authorize, for a project the use case found itself (the actor's role there, vmdeck.usecases.actor)."""
    authorize(dataclasses.replace(actor, role=actor.role_in(project)), action, project)

"""Who asks for a use case, and through which door (use-case layer)."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Origin", "Actor", "ADMIN"]

# cli: the `vmdeck` command in-process; socket: the command handed to `vmdeck serve` on its local socket;
# api: a signed-in browser or an API token; schedule: vmdeck itself (a drain, a timer).
Origin = Literal["cli", "socket", "api", "schedule"]
# The role of a host administrator (root at the CLI, an administrator's account at the API).
ADMIN = "admin"


@dataclass
class Actor:
    """The caller of a use case.

    `role` is the caller's role in the project concerned ("admin" for a host administrator, else
    viewer/operator/manager, None for none). `project`, when `project_known`, is the project the
    interface already established (the API's policy looked the VM up); otherwise the use case reads the
    VM's project itself. `via` and `target` are what the audit line says about the door and the request.
    """

    user: str
    origin: Origin
    role: str | None = ADMIN
    project: str | None = None
    project_known: bool = False
    via: str = ""
    target: str = ""
    recorded: bool = False  # the use case wrote the audit line (the API then writes none of its own)
    # The caller's role in any project, for a use case that finds the project itself (a network's): the API's
    # memberships. None: `role` is the only one known.
    role_of: Callable[[str], str | None] | None = None

    @property
    def admin(self) -> bool:
        return self.role == ADMIN

    def role_in(self, project: str | None) -> str | None:
        """The caller's role in `project` (ADMIN for a host administrator, None for none)."""
        if self.admin:
            return ADMIN
        if self.project_known and project == self.project:
            return self.role
        return self.role_of(project) if self.role_of is not None and project is not None else None

    @classmethod
    def cli(cls, target: str) -> Actor:
        """The user at this machine's `vmdeck` command: root (or a member of the libvirt group), who
        could do the same with virsh, so a host administrator; the audit names the sudo user."""
        return cls(user=os.environ.get("SUDO_USER") or getpass.getuser(), origin="cli", via="cli", target=target)

    @classmethod
    def schedule(cls, target: str) -> Actor:
        return cls(user="vmdeck", origin="schedule", via="schedule", target=target)

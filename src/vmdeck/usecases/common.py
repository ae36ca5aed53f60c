"""Small pieces every use case shares: the VM's project, the progress callback (use-case layer)."""

from __future__ import annotations

from collections.abc import Callable

from vmdeck.host.connection import Host
from vmdeck.usecases.actor import Actor
from vmdeck.vm.project import project_of

__all__ = ["Progress", "quiet", "vm_project"]

Progress = Callable[[str], None]


def quiet(_message: str) -> None:
    """The progress callback of a caller that shows none."""


def vm_project(actor: Actor, host: Host, name: str) -> str | None:
    """The project of VM `name`: the one the interface established already, else its libvirt metadata
    (NotFound for no VM). None: a VM outside any project (administrators only), held to no quota."""
    if actor.project_known:
        return actor.project
    return project_of(host, name)

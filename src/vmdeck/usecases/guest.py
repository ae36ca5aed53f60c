"""Acting in a running guest as a person or a program at it would: exec through the agent, keys, text and
the pointer; and the screenshot, which changes nothing (use-case layer).

Each change is audited like any other (a key press can log a user out, a command can do anything the guest's
root can), with the role the API's policy gives it: vm.exec and vm.keys need an operator. The screenshot
only checks policy: a read writes no audit line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from vmdeck.host.connection import Host
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.common import vm_project
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.services import Services
from vmdeck.vm.agent import ExecResult

__all__ = ["exec_command", "send_keys", "type_text", "mouse_move", "mouse_click", "screenshot"]

T = TypeVar("T")


def _act(svc: Services, actor: Actor, host: Host, name: str, action: str, do: Callable[[], T]) -> T:
    project = project_of_vm(svc, actor, action, host, name)
    with audited(svc, actor, action, project, name):
        authorize(actor, action, project)
        result = do()
    return result


def exec_command(svc: Services, actor: Actor, host: Host, name: str, command: list[str], *,
                 timeout: float = 60.0) -> ExecResult:
    """Run `command` in the guest; the audit line says the call succeeded, whatever the command's own status."""
    from vmdeck.vm.agent import guest_exec

    return _act(svc, actor, host, name, "vm.exec", lambda: guest_exec(host.lookup(name), command, timeout=timeout))


def send_keys(svc: Services, actor: Actor, host: Host, name: str, keys: list[str], *, hold_ms: int | None = None
              ) -> int:
    from vmdeck.console import input as vm_input

    hold = vm_input.HOLD_MS if hold_ms is None else hold_ms
    return _act(svc, actor, host, name, "vm.keys", lambda: vm_input.send_keys(host.lookup(name), keys, hold_ms=hold))


def type_text(svc: Services, actor: Actor, host: Host, name: str, text: str) -> int:
    from vmdeck.console import input as vm_input

    return _act(svc, actor, host, name, "vm.keys", lambda: vm_input.type_text(host.lookup(name), text))


def mouse_move(svc: Services, actor: Actor, host: Host, name: str, x: int, y: int) -> tuple[int, int]:
    from vmdeck.console import input as vm_input

    return _act(svc, actor, host, name, "vm.keys", lambda: vm_input.mouse_move(host.lookup(name), x, y))


def mouse_click(svc: Services, actor: Actor, host: Host, name: str, button: str = "left") -> None:
    from vmdeck.console import input as vm_input

    _act(svc, actor, host, name, "vm.keys", lambda: vm_input.mouse_click(host.lookup(name), button))


def screenshot(actor: Actor, host: Host, name: str, screen: int = 0) -> bytes:
    """The screen as PNG, for a viewer of the VM's project (no audit line: nothing changes)."""
    from vmdeck.console.screen import screenshot as grab

    authorize(actor, "vm.screenshot", vm_project(actor, host, name))
    return grab(host.lookup(name), screen)

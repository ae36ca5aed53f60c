"""Talk to the QEMU guest agent inside a VM through libvirt: exec, ping, guest info.

The agent (qemu-ga) is what real distributions ship, so the same code runs
commands in vmdeck's tiny guest and in a Debian or Fedora guest alike.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import GuestError, InvalidInput, NotFound, StateError, VmdeckError
from vmdeck.host.libvirt_api import PROGRAM_MISSING, Domain
from vmdeck.vm.state import current_state

__all__ = ["ExecResult", "agent_command", "guest_exec", "agent_ping"]


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    signal: int | None = None


def _require_agent(dom: Domain) -> None:
    state = current_state(dom)
    if state != "running":
        raise StateError(dom.name, state, "running", "talk to the guest agent of")
    if not parse_domain(dom.xml()).has_agent_channel:
        raise GuestError(f"VM {dom.name!r} has no guest agent channel (org.qemu.guest_agent.0)")


def agent_command(dom: Domain, command: str, arguments: dict[str, Any] | None = None,
                  timeout: int = 10) -> Any:
    """Send one QMP-style command to the guest agent and return its `return` value."""
    request: dict[str, Any] = {"execute": command}
    if arguments is not None:
        request["arguments"] = arguments
    try:
        reply = dom.agent_command(json.dumps(request), timeout, context=f"agent {command}")
    except GuestError as err:
        if err.reason == "operation_timeout":
            raise GuestError(f"the guest agent of VM {dom.name!r} did not answer {command} within {timeout} s") from err
        raise GuestError(f"the guest agent of VM {dom.name!r} is not responding (not installed or not started?)") from err
    return json.loads(reply).get("return")


def agent_ping(dom: Domain, timeout: int = 2) -> bool:
    try:
        agent_command(dom, "guest-ping", timeout=timeout)
    except GuestError:
        return False
    return True


def guest_exec(dom: Domain, argv: list[str], *, timeout: float = 60.0,
               stdin: bytes | None = None) -> ExecResult:
    """Run argv[0] with argv[1:] in the guest (no shell), wait, and return its output and status."""
    if not argv or not argv[0]:
        raise InvalidInput("exec needs a command to run")
    _require_agent(dom)
    arguments: dict[str, Any] = {"path": argv[0], "arg": argv[1:], "capture-output": True}
    if stdin is not None:
        arguments["input-data"] = base64.b64encode(stdin).decode()
    try:
        pid = agent_command(dom, "guest-exec", arguments)["pid"]
    except VmdeckError as err:
        # The agent could not spawn it: almost always a program that is not in the guest.
        if err.cause == PROGRAM_MISSING:
            raise NotFound(f"command {argv[0]!r} not found in VM {dom.name!r}") from err
        raise
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        status = agent_command(dom, "guest-exec-status", {"pid": pid})
        if status.get("exited"):
            return ExecResult(
                exit_code=int(status.get("exitcode", 128 + int(status.get("signal", 0)))),
                stdout=base64.b64decode(status.get("out-data", "")),
                stderr=base64.b64decode(status.get("err-data", "")),
                signal=status.get("signal"),
            )
        if time.monotonic() > deadline:
            raise GuestError(f"command {argv[0]!r} in VM {dom.name!r} did not finish within {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)

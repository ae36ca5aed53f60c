"""When a VM made from an image can be reached by ssh: cloud-init finished, sshd answering (vm layer).

The guest agent of a cloud image answers seconds before its SSH server does: cloud-init is still
making the host keys, and QEMU's user-mode forward accepts the connection and resets it
("kex_exchange_identification: read: Connection reset by peer"). So for a VM created from an image
(it records a login user or a base image and forwards a loopback port to its port 22), "ready" means:
cloud-init's final stage wrote /run/cloud-init/result.json (read through the guest agent), and the
forwarded port answers with an SSH banner. `vmdeck start --wait` and `vmdeck ssh` both wait for this.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from vmdeck.domxml.parse import DomainView, PortForwardView, parse_domain
from vmdeck.errors import GuestError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import GUEST_FILE_MISSING, Domain
from vmdeck.vm.state import ACTIVE, current_state

__all__ = ["SshGate", "ssh_gate", "ssh_banner", "cloud_init_running", "wait_reachable"]

# cloud-init's generator writes ENABLED at the very start of boot; its last stage writes RESULT (both
# in /run: every boot starts without them, unlike /var/lib/cloud/instance/boot-finished).
ENABLED_FILE = "/run/cloud-init/enabled"
RESULT_FILE = "/run/cloud-init/result.json"
BANNER_TIMEOUT_S = 10.0  # a loaded TCG guest can take seconds to send its banner once it accepted
Progress = Callable[[str], None]


def _forward_22(view: DomainView) -> PortForwardView | None:
    return next((f for f in view.port_forwards if f.guest_port == 22 and f.proto == "tcp"), None)


def ssh_banner(address: str, port: int, timeout: float = BANNER_TIMEOUT_S) -> bytes | None:
    """The SSH identification line the server sends first, or None (refused, reset, silent, not SSH)."""
    deadline = time.monotonic() + timeout
    received = b""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            while b"\n" not in received and len(received) < 255:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                chunk = sock.recv(255)
                if not chunk:
                    break
                received += chunk
    except OSError:
        return None
    return received.split(b"\n", 1)[0].rstrip(b"\r") if received.startswith(b"SSH-") else None


def _guest_file_exists(dom: Domain, path: str) -> bool | None:
    """Whether `path` exists in the guest, through its agent; None when the agent cannot tell."""
    try:
        reply = dom.agent_command(json.dumps({"execute": "guest-file-open", "arguments": {"path": path}}), 5,
                                  context="agent guest-file-open")
    except VmdeckError as err:
        return False if err.cause == GUEST_FILE_MISSING else None
    handle = json.loads(reply).get("return")
    try:
        dom.agent_command(json.dumps({"execute": "guest-file-close", "arguments": {"handle": handle}}), 5,
                          context="agent guest-file-close")
    except VmdeckError:
        pass  # the agent closes its handles when it restarts; an open read handle costs nothing meanwhile
    return True


def cloud_init_running(dom: Domain) -> bool | None:
    """True while cloud-init has not finished this boot; False when it has, is disabled or absent;
    None when the agent does not answer (the caller goes by the SSH banner alone)."""
    done = _guest_file_exists(dom, RESULT_FILE)
    if done is None or done:
        return None if done is None else False
    return _guest_file_exists(dom, ENABLED_FILE)


@dataclass
class SshGate:
    """One VM's way to "reachable by ssh"; `check()` looks once and says whether it is there."""

    dom: Domain
    forward: PortForwardView | None  # None: the forward listens on another host's loopback
    cloud_init: bool  # ask the agent about cloud-init (a VM made from an image with an agent)
    status: str = "not checked yet"

    def check(self) -> bool:
        if self.cloud_init:
            running = cloud_init_running(self.dom)
            if running:
                self.status = "cloud-init is still running"
                return False
            self.cloud_init = running is None  # finished: not asked again (None: the agent may come back)
        if self.forward is not None:
            address = self.forward.address or "127.0.0.1"
            if ssh_banner(address, self.forward.host_port) is None:
                self.status = f"SSH does not answer on {address}:{self.forward.host_port} yet"
                return False
        self.status = "reachable"
        return True


def ssh_gate(host: Host, dom: Domain, view: DomainView | None = None, *, any_forward: bool = False) -> SshGate | None:
    """The gate of a VM made from an image (None for other VMs: their readiness is the agent's or the
    marker's). With `any_forward`, any VM forwarding its port 22 gets one (`vmdeck ssh` connects there)."""
    view = view or parse_domain(dom.xml())
    forward = _forward_22(view)
    from_image = "login-user" in view.extra or "base-image" in view.extra
    if forward is None or not (from_image or any_forward):
        return None
    return SshGate(dom, forward if host.is_local else None, cloud_init=from_image and view.has_agent_channel)


def wait_reachable(host: Host, name: str, timeout: float, progress: Progress = lambda _m: None, *,
                   gate: SshGate | None = None, started: float | None = None, poll: float = 1.0) -> float:
    """Wait until `name` is reachable by ssh (see the module); seconds waited. A VM without a gate
    returns at once. GuestError after `timeout` seconds from `started`, saying what is missing."""
    started = time.monotonic() if started is None else started
    dom = host.lookup(name)
    gate = gate or ssh_gate(host, dom, any_forward=True)
    if gate is None:
        return 0.0
    told = ""
    while True:
        if gate.check():
            return time.monotonic() - started
        state = current_state(dom)
        if state not in ACTIVE:
            raise GuestError(f"VM {name!r} is {state}: it stopped while waiting for its SSH server")
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise GuestError(f"VM {name!r} is not reachable by ssh after {timeout:g} s: {gate.status}")
        if gate.status != told:  # once per change: "cloud-init is still running", then "SSH does not answer"
            progress(f"waiting for {name} to be reachable by ssh: {gate.status} (up to {left:.0f} s more)")
            told = gate.status
        time.sleep(min(poll, left))

"""`vmdeck ssh`: the ssh(1) command line that reaches a guest through its loopback port forward (vm layer).

The VM's user-mode NIC forwards a port on the host's 127.0.0.1 to the guest's
port 22 (domxml's `forward_ssh`), so no bridge and no private-range address is
involved. Host keys are remembered in vmdeck's own known_hosts under an alias
naming the VM's UUID: a port reused by a later VM never looks like a changed key.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from vmdeck.domxml.parse import DomainView, PortForwardView, parse_domain
from vmdeck.errors import HostError, InvalidInput, NotFound, StateError
from vmdeck.host.connection import Host
from vmdeck.paths import config_dir
from vmdeck.vm.state import current_state

__all__ = ["ssh_forward", "ssh_argv", "known_hosts_path"]


def known_hosts_path() -> Path:
    return config_dir() / "known_hosts"


def ssh_forward(view: DomainView) -> PortForwardView:
    """The forward of guest port 22 on a loopback address, or NotFound naming what to do."""
    for forward in view.port_forwards:
        if forward.guest_port == 22 and forward.proto == "tcp":
            return forward
    raise NotFound(f"VM {view.name!r} has no port forward to its port 22 "
                   "(create it from an image, or with a template whose NIC has forward_ssh: true)")


def ssh_argv(host: Host, name: str, *, user: str | None = None, identity: Path | None = None,
             command: Sequence[str] = (), extra_options: Sequence[str] = ()) -> list[str]:
    """The argument list for /usr/bin/ssh (never a shell string)."""
    dom = host.lookup(name)
    if not host.is_local:
        raise InvalidInput(f"VM {name!r} runs on {host.uri}: its port forward listens on that host's loopback "
                           "only; run vmdeck ssh there")
    view = parse_domain(dom.xml())
    forward = ssh_forward(view)
    state = current_state(dom)
    if state != "running":
        raise StateError(name, state, "running", "ssh into")
    login = user or view.extra.get("login-user")
    if not login:
        raise InvalidInput(f"VM {name!r} records no login user: give --user")
    ssh = shutil.which("ssh") or "/usr/bin/ssh"
    if not Path(ssh).exists():
        raise HostError("ssh is not installed (Debian package openssh-client)")
    known = known_hosts_path()
    known.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        ssh,
        "-p", str(forward.host_port),
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={known}",
        "-o", f"HostKeyAlias=vmdeck-{view.uuid}",
        "-o", "ConnectTimeout=15",
        *extra_options,
    ]
    if identity is not None:
        if not Path(identity).expanduser().is_file():
            raise InvalidInput(f"identity file {identity} does not exist")
        argv += ["-i", str(Path(identity).expanduser()), "-o", "IdentitiesOnly=yes"]
    argv += ["-l", login, forward.address or "127.0.0.1", *command]
    return argv

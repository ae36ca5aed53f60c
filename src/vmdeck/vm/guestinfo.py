"""What the guest says about itself through its agent: OS, hostname, addresses, filesystems (core layer).

Each part is one guest-agent command (guest-get-osinfo, guest-get-host-name,
guest-network-get-interfaces, guest-get-fsinfo). An agent that lacks one (old
qemu-ga, a Windows build, a policy that disables it) still answers the others:
the result is partial and names what is missing. No agent at all is a GuestError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import GuestError, StateError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.vm.agent import agent_command, agent_ping
from vmdeck.vm.state import current_state

__all__ = ["GuestInfo", "InterfaceInfo", "FilesystemInfo", "guest_info"]


@dataclass(frozen=True)
class InterfaceInfo:
    name: str
    mac: str | None
    addresses: tuple[str, ...]  # "10.0.2.15/24", "fe80::.../64"


@dataclass(frozen=True)
class FilesystemInfo:
    mountpoint: str
    type: str
    device: str
    total_bytes: int | None
    used_bytes: int | None


@dataclass(frozen=True)
class GuestInfo:
    vm: str
    os: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    interfaces: tuple[InterfaceInfo, ...] = ()
    filesystems: tuple[FilesystemInfo, ...] = ()
    unavailable: dict[str, str] = field(default_factory=dict)  # agent command -> why it gave no answer


def _interfaces(reply: list[dict[str, Any]]) -> tuple[InterfaceInfo, ...]:
    result = []
    for iface in reply or []:
        addresses = tuple(f"{a.get('ip-address')}/{a.get('prefix')}" for a in iface.get("ip-addresses", [])
                          if a.get("ip-address"))
        result.append(InterfaceInfo(iface.get("name", "?"), iface.get("hardware-address"), addresses))
    return tuple(result)


def _filesystems(reply: list[dict[str, Any]]) -> tuple[FilesystemInfo, ...]:
    result = []
    for fs in reply or []:
        disks = fs.get("disk") or []
        device = disks[0].get("dev", "") if disks else ""
        result.append(FilesystemInfo(fs.get("mountpoint", "?"), fs.get("type", ""), device or fs.get("name", ""),
                                     fs.get("total-bytes"), fs.get("used-bytes")))
    return tuple(result)


def guest_info(host: Host, name: str, *, timeout: int = 10) -> GuestInfo:
    """Ask the guest agent of running VM `name` everything `vmdeck guest-info` shows."""
    dom = host.lookup(name)
    state = current_state(dom)
    if state != "running":
        raise StateError(name, state, "running", "ask the guest of")
    if not parse_domain(dom.xml()).has_agent_channel:
        raise GuestError(f"VM {name!r} has no guest agent channel: it cannot report anything about its guest")
    if not agent_ping(dom, timeout=min(timeout, 5)):
        raise GuestError(f"the guest agent of VM {name!r} does not answer (qemu-ga not installed or not running "
                         "in the guest, or the guest is still booting)")
    answers: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    for command in ("guest-get-osinfo", "guest-get-host-name", "guest-network-get-interfaces", "guest-get-fsinfo"):
        try:
            answers[command] = agent_command(dom, command, timeout=timeout)
        except GuestError:
            raise  # the agent went away: nothing else will answer either
        except VmdeckError as err:
            # The agent answered with an error: unknown or disabled command, or it failed in the guest.
            unavailable[command] = str(err).split(": ", 1)[-1]
    osinfo = answers.get("guest-get-osinfo") or {}
    return GuestInfo(
        vm=name,
        os={k: str(v) for k, v in osinfo.items() if v not in (None, "")},
        hostname=(answers.get("guest-get-host-name") or {}).get("host-name"),
        interfaces=_interfaces(answers.get("guest-network-get-interfaces") or []),
        filesystems=_filesystems(answers.get("guest-get-fsinfo") or []),
        unavailable=unavailable,
    )

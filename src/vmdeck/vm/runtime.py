"""How long a running VM has been up and which addresses its guest has (core layer): the list's
Uptime and IP columns.

Uptime is the age of the VM's QEMU process, read from /proc through the pid libvirt records; that is
only possible for a VM on this machine, so a VM of a remote host has no uptime (blank, not guessed).
Addresses come from the guest agent when it answers, else from the DHCP leases of libvirt's own
networks; a guest with neither has none.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.hostview.process import read_libvirt_record
from vmdeck.hostview.procfs import CLK_TCK, boot_time, parse_stat, read_text
from vmdeck.vm.agent import agent_ping

__all__ = ["uptime_s", "guest_addresses", "Addresses"]


@dataclass(frozen=True)
class Addresses:
    vm: str
    addresses: tuple[str, ...]  # "10.0.2.15", "fec0::5054:ff:fe12:3456", without prefix length
    source: str  # "agent", "lease" or "none"


def uptime_s(host: Host, name: str, *, now: float | None = None, btime: int | None = None) -> float | None:
    """Seconds since the QEMU process of running VM `name` started, or None (not running here, remote host)."""
    # Only QEMU's local driver keeps its records in /run/libvirt/qemu on this machine.
    if not (host.is_local and host.uri.startswith("qemu:")):
        return None
    record = read_libvirt_record(name)
    if record is None or record.pid is None:
        return None
    stat_text = read_text(f"/proc/{record.pid}/stat")
    if stat_text is None:
        return None
    started = (btime if btime is not None else boot_time()) + int(parse_stat(stat_text)["starttime_ticks"]) / CLK_TCK
    return max(0.0, (now if now is not None else time.time()) - started)


def _flatten(reply: dict[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for iface, info in sorted(reply.items()):
        if iface == "lo":
            continue
        for address in info.get("addrs") or []:
            addr = str(address.get("addr", ""))
            if addr and not addr.startswith(("127.", "::1", "fe80:")):
                found.append(addr)
    return tuple(found)


def guest_addresses(host: Host, name: str) -> Addresses:
    """The guest's addresses: the agent's view, else libvirt's DHCP leases; empty when neither knows."""
    dom = host.lookup(name)
    if not dom.is_active():
        return Addresses(name, (), "none")
    # A short ping first: an agent that is not there would otherwise hold the call for its whole timeout.
    if agent_ping(dom, timeout=2):
        with contextlib.suppress(VmdeckError):
            found = _flatten(dom.interface_addresses("agent"))
            if found:
                return Addresses(name, found, "agent")
    with contextlib.suppress(VmdeckError):
        found = _flatten(dom.interface_addresses("lease"))
        if found:
            return Addresses(name, found, "lease")
    return Addresses(name, (), "none")

"""Port forwards on this machine's firewall: nftables, the bridge's sysctl, libvirt's FORWARD chain (core layer).

`apply(rules)` makes the firewall hold exactly `rules`, whatever it held before (idempotent: the same call
after a host reboot, a libvirtd restart or a VM start puts back what is missing):

1. `table ip vmdeck` is replaced in one `nft -f -` transaction (vmdeck.vm.forward_rules), its text given
   on stdin to an argv, never through a shell;
2. `route_localnet` is set on each bridge with a forward from 127.0.0.1 (the kernel routes 127.0.0.0/8
   off `lo` only then; the table's `guard` chain keeps guests off the host's loopback);
3. a forward from another address crosses the host's FORWARD path, where libvirt (iptables backend)
   rejects any new connection into a NAT network: one ACCEPT per forward, for connections vmdeck's DNAT
   made (`--ctstate DNAT`), goes first in libvirt's LIBVIRT_FWI chain, tagged with a comment so the
   next apply finds and replaces them. libvirt rebuilds that chain when libvirtd restarts: the next apply
   (a VM start, `vmdeck serve`) puts them back. A libvirt without that chain (its nftables backend) gets
   none (forwards from 127.0.0.1 never cross FORWARD).

`port_free` tells whether a process of this host holds a port already: a forward would hide it.
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path

from vmdeck.errors import Conflict, HostError, InvalidInput
from vmdeck.vm.forward_rules import TABLE, ForwardRule, ruleset

__all__ = ["apply", "port_free", "table_exists", "COMMENT"]

COMMENT = "vmdeck-forward"
_CHAIN = "LIBVIRT_FWI"
_SYSCTL = Path("/proc/sys/net/ipv4/conf")
_VMDECK_BRIDGE = re.compile(r"vd[0-9a-f]{10}")  # vmdeck.domxml.network.bridge_name


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        raise HostError(f"cannot run {argv[0]}: {err}") from err


def apply(rules: Iterable[ForwardRule]) -> None:
    rules = list(rules)
    looped = {r.bridge for r in rules if r.loopback}
    for bridge in sorted(looped):
        try:
            (_SYSCTL / bridge / "route_localnet").write_text("1\n")
        except OSError as err:
            raise HostError(f"cannot enable route_localnet on bridge {bridge} (is its network active?): {err}") from err
    done = _run(["nft", "-f", "-"], ruleset(rules))
    if done.returncode != 0:
        raise HostError(f"nft refused vmdeck's forward rules: {' '.join(done.stderr.split())[:400]}")
    # A bridge with no loopback forward left loses route_localnet with its guard rule (in that order here: the
    # table went first, so for a moment neither applies, and a guest cannot send to 127.0.0.0/8 meanwhile).
    for setting in _SYSCTL.glob("vd*/route_localnet"):
        if _VMDECK_BRIDGE.fullmatch(setting.parent.name) and setting.parent.name not in looped:
            with contextlib.suppress(OSError):
                if setting.read_text().strip() != "0":
                    setting.write_text("0\n")
    _sync_libvirt_chain([r for r in rules if not r.loopback])


def table_exists() -> bool:
    """Whether this machine's firewall holds vmdeck's table now."""
    return _run(["nft", "list", "table", "ip", TABLE]).returncode == 0


def _accept_args(r: ForwardRule) -> list[str]:
    return ["-o", r.bridge, "-d", f"{r.guest_ip}/32", "-p", r.proto, "-m", r.proto, "--dport", str(r.guest_port),
            "-m", "conntrack", "--ctstate", "DNAT", "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"]


def _sync_libvirt_chain(rules: list[ForwardRule]) -> None:
    listed = _run(["iptables", "-w", "-S", _CHAIN])
    if listed.returncode != 0:
        return  # no such chain: libvirt's nftables backend, or no NAT network started yet
    for line in listed.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["-A", _CHAIN] and COMMENT in parts:
            _run(["iptables", "-w", "-D", _CHAIN, *parts[2:]])
    for r in rules:
        done = _run(["iptables", "-w", "-I", _CHAIN, "1", *_accept_args(r)])
        if done.returncode != 0:
            raise HostError(f"iptables refused the forward's accept rule: {' '.join(done.stderr.split())[:300]}")


def port_free(address: str, proto: str, port: int) -> None:
    """Conflict when a process of this host listens on (or holds) address:port/proto; InvalidInput when
    `address` is not one of this host's."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((address, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise Conflict(f"port {port}/{proto} on {address} is in use by another process of this host") from err
            if err.errno == errno.EADDRNOTAVAIL:
                raise InvalidInput(f"{address} is not an address of this host", field="address") from err
            if err.errno == errno.EACCES:
                raise InvalidInput(f"port {port} needs root to open on this host", field="ports") from err
            raise HostError(f"cannot check port {port}/{proto} on {address}: {err}") from err

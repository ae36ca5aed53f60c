"""Port forwards as nftables rules: the checked shape of a forward, and the ruleset text (core layer, pure).

Every forward of this host lives in one table vmdeck owns, `table ip vmdeck`, rewritten whole at each
change (one `nft -f -` transaction: there is never a moment with half the rules):

- `output` (nat, before routing of this host's own packets): a connection from this host to the forward's
  address (127.0.0.1 included) is sent to the guest (DNAT);
- `prerouting` (nat): the same for connections from other machines to a non-loopback address;
- `postrouting` (nat): a connection that came from 127.0.0.0/8 leaves through the bridge masqueraded as
  the host's gateway address, which the guest can answer (127.0.0.1 means nothing on the guest);
- `guard` (filter, before conntrack): the kernel routes 127.0.0.0/8 off `lo` only with `route_localnet`
  set on the bridge, which would also let a guest reach the host's loopback services: a packet from the
  bridge to 127.0.0.0/8 is dropped.

Nothing here comes from the caller unchecked: addresses go through `ipaddress`, ports are ints, the
protocol one of two words and the bridge vmdeck's own hex name (vmdeck.domxml.network.bridge_name).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from vmdeck.errors import InvalidInput

__all__ = ["TABLE", "PROTOS", "ForwardRule", "parse_ports", "check_proto", "check_address", "ruleset"]

TABLE = "vmdeck"  # `table ip vmdeck`
PROTOS = ("tcp", "udp")
_BRIDGE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_DIGITS = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class ForwardRule:
    """One forward as the firewall sees it: address:host_port/proto -> guest_ip:guest_port via `bridge`."""

    address: str
    proto: str
    host_port: int
    guest_ip: str
    guest_port: int
    bridge: str

    @property
    def loopback(self) -> bool:
        return ipaddress.IPv4Address(self.address).is_loopback


def _port(text: str, what: str) -> int:
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= 65535:  # ASCII digits only: int() takes others
        raise InvalidInput(f"invalid {what} {text!r}: a number from 1 to 65535", field="ports")
    return int(text)


def parse_ports(text: str) -> tuple[int, int]:
    """HOSTPORT[:GUESTPORT] -> (host port, guest port); the guest port defaults to the host port."""
    host, sep, guest = text.partition(":")
    host_port = _port(host, "host port")
    return host_port, _port(guest, "guest port") if sep else host_port


def check_proto(proto: str) -> str:
    if proto not in PROTOS:
        raise InvalidInput(f"invalid protocol {proto!r}: tcp or udp", field="proto")
    return proto


def check_address(address: str) -> str:
    """A single IPv4 address of this host to listen on (127.0.0.1, or one of its own); not a wildcard."""
    try:
        parsed = ipaddress.IPv4Address(address)
    except ValueError as err:
        raise InvalidInput(f"invalid address {address!r}: an IPv4 address of this host, e.g. 127.0.0.1",
                           field="address") from err
    if parsed.is_unspecified or parsed.is_multicast or parsed.is_reserved:
        raise InvalidInput(f"address {address}: name one address of this host (127.0.0.1, or its own)",
                           field="address")
    return str(parsed)


def _rule(r: ForwardRule) -> str:
    ipaddress.IPv4Address(r.guest_ip)  # ValueError: never reaches nft
    check_proto(r.proto)
    return f"ip daddr {check_address(r.address)} {r.proto} dport {int(r.host_port)} dnat to {r.guest_ip}:{int(r.guest_port)}"


def ruleset(rules: Iterable[ForwardRule]) -> str:
    """The `nft -f` input that makes `table ip vmdeck` hold exactly `rules` (none: the table is deleted)."""
    rules = sorted(rules, key=lambda r: (r.address, r.proto, r.host_port))
    for r in rules:
        if not _BRIDGE.fullmatch(r.bridge):
            raise InvalidInput(f"invalid bridge name {r.bridge!r}")
    # `table ... {}` first: deleting a table that does not exist is an error, creating one that does is not.
    lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}"]
    if not rules:
        return "\n".join(lines) + "\n"
    loop_bridges = sorted({r.bridge for r in rules if r.loopback})
    lines += [f"table ip {TABLE} {{",
              "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
              *(f"    {_rule(r)}" for r in rules if not r.loopback), "  }",
              "  chain output {", "    type nat hook output priority -100; policy accept;",
              *(f"    {_rule(r)}" for r in rules), "  }",
              "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
              *(f'    oifname "{b}" ip saddr 127.0.0.0/8 ct status dnat masquerade' for b in loop_bridges), "  }",
              "  chain guard {", "    type filter hook prerouting priority raw; policy accept;",
              *(f'    iifname "{b}" ip daddr 127.0.0.0/8 drop' for b in loop_bridges), "  }",
              "}"]
    return "\n".join(lines) + "\n"

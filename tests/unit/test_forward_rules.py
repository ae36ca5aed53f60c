"""Port forwards without a host: the checked input, the nftables ruleset, and the stored rows' rules
(a port forwarded once per address and protocol, the project's forwards quota)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vmdeck.errors import Conflict, InvalidInput
from vmdeck.store.db import open_database
from vmdeck.store.forwards import Forwards
from vmdeck.store.quota import QuotaExceeded
from vmdeck.store.tenancy import Tenancy
from vmdeck.vm.forward_rules import ForwardRule, check_address, parse_ports, ruleset


def test_ports_protocol_and_address_are_checked() -> None:
    assert parse_ports("8080") == (8080, 8080) and parse_ports("2222:22") == (2222, 22)
    for bad in ("0", "70000", "80:", ":80", "http", "80:22:1", "-1", "８０"):
        with pytest.raises(InvalidInput):
            parse_ports(bad)
    assert check_address("127.0.0.1") == "127.0.0.1"
    for bad in ("0.0.0.0", "localhost", "10.0.0.1; flush ruleset", "::1", "224.0.0.1"):
        with pytest.raises(InvalidInput):
            check_address(bad)


def test_the_ruleset_holds_every_forward_and_guards_loopback() -> None:
    text = ruleset([ForwardRule("127.0.0.1", "tcp", 8080, "10.9.0.10", 80, "vdabcdef0123"),
                    ForwardRule("192.0.2.7", "udp", 5353, "10.9.0.10", 53, "vdabcdef0123")])
    assert text.startswith("table ip vmdeck {}\ndelete table ip vmdeck\n")
    output = text.split("chain output {")[1].split("}")[0]
    prerouting = text.split("chain prerouting {")[1].split("}")[0]
    assert "ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.9.0.10:80" in output
    assert "ip daddr 192.0.2.7 udp dport 5353 dnat to 10.9.0.10:53" in output
    # From other machines: only the non-loopback address (a packet to 127.0.0.1 never comes in from outside).
    assert "192.0.2.7" in prerouting and "127.0.0.1" not in prerouting
    assert 'oifname "vdabcdef0123" ip saddr 127.0.0.0/8 ct status dnat masquerade' in text
    assert 'iifname "vdabcdef0123" ip daddr 127.0.0.0/8 drop' in text
    # No forwards left: the table goes.
    assert ruleset([]) == "table ip vmdeck {}\ndelete table ip vmdeck\n"
    # nft itself accepts the text (check mode: nothing is changed).
    checked = subprocess.run(["nft", "-c", "-f", "-"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_nothing_unchecked_reaches_the_ruleset() -> None:
    with pytest.raises(InvalidInput):
        ruleset([ForwardRule("127.0.0.1", "tcp", 80, "10.9.0.10", 80, 'br0" accept; #')])
    with pytest.raises(InvalidInput):
        ruleset([ForwardRule("127.0.0.1", "sctp", 80, "10.9.0.10", 80, "vd1")])
    with pytest.raises(ValueError):
        ruleset([ForwardRule("127.0.0.1", "tcp", 80, "10.9.0.10 drop", 80, "vd1")])


def test_a_port_once_per_address_and_protocol_within_the_quota(tmp_path: Path) -> None:
    db = open_database(tmp_path / "web.sqlite")
    tenancy = Tenancy(db)
    tenancy.create_project("acme", {"forwards": 2})
    store = Forwards(db)
    made = store.add("acme", "web1", "acme-net", "52:54:00:00:00:01", "127.0.0.1", "tcp", 8080, "10.9.0.10", 80)
    assert made.label == "127.0.0.1:8080/tcp" and made.project == "acme"
    with pytest.raises(Conflict, match="forwarded already"):
        store.check_room("acme", "127.0.0.1", "tcp", 8080)
    with pytest.raises(Conflict, match="forwarded already"):  # the database's unique key, for a racing add
        store.add("acme", "web2", "acme-net", "52:54:00:00:00:02", "127.0.0.1", "tcp", 8080, "10.9.0.11", 80)
    store.add("acme", "web1", "acme-net", "52:54:00:00:00:01", "127.0.0.1", "udp", 8080, "10.9.0.10", 80)
    with pytest.raises(QuotaExceeded, match="forwards limit 2, in use 2"):
        store.add("acme", "web1", "acme-net", "52:54:00:00:00:01", "127.0.0.1", "tcp", 8081, "10.9.0.10", 81)
    store.add(None, "loose", "lab", "52:54:00:00:00:03", "127.0.0.1", "tcp", 8082, "10.9.1.10", 22)  # no project
    assert store.count("acme") == 2 and tenancy.project("acme").quota["forwards"] == 2
    assert [f.host_port for f in store.remove_vm("web1")] == [8080, 8080]
    assert [f.vm for f in store.all()] == ["loose"]

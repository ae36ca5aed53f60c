"""Networks a project owns, inside a libvirtd in a network namespace of this test's own (nshosts.py):
two projects' VMs on their own networks reach their own gateway and not each other; a VM that takes
another IP address loses its network (clean-traffic); the bridges are the namespace's, never the host's.
All guest traffic stays inside that namespace."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import pytest
from itest_support import PREFIX, READY_TIMEOUT_S, wait_for
from nshosts import NamespaceHost, start_hosts, stop_hosts

from vmdeck.domxml.network import bridge_name
from vmdeck.errors import Conflict
from vmdeck.host.connection import Host
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle, networks
from vmdeck.vm.agent import guest_exec
from vmdeck.vm.create import create_vm

_NET = 100 + os.getpid() % 100  # 10.231.<_NET>.0/24 and the next: unique per test process


@pytest.fixture(scope="module")
def ns_host(host: Host) -> Iterator[NamespaceHost]:
    made = start_hosts(host, 1)
    try:
        yield made[0]
    finally:
        stop_hosts(made)


def _sh(on: Host, vm: str, script: str) -> tuple[int, str]:
    done = guest_exec(on.lookup(vm), ["/bin/sh", "-c", script], timeout=120)
    return done.exit_code, done.stdout.decode() + done.stderr.decode()


def _address(on: Host, vm: str) -> str | None:
    code, out = _sh(on, vm, "ip -o -4 addr show eth0 | awk '{print $4}'")
    return out.strip().split("/")[0] or None if code == 0 else None


@pytest.fixture(scope="module")
def two_projects(ns_host: NamespaceHost) -> Iterator[dict[str, str]]:
    """One VM per project, each on its project's NAT network in the namespace host: both have a default
    route through their gateway, so only the firewall libvirt puts between networks keeps them apart."""
    names = {"net1": f"p1-{os.getpid()}", "net2": f"p2-{os.getpid()}", "vm1": f"{PREFIX}net1", "vm2": f"{PREFIX}net2"}
    with ns_host.connect() as on:
        try:
            networks.create_network(on, names["net1"], mode="nat", subnet=f"10.231.{_NET}.0/24", project="p1")
            networks.create_network(on, names["net2"], mode="nat", subnet=f"10.231.{_NET + 1}.0/24",
                                    project="p2")
            for vm, net in (("vm1", "net1"), ("vm2", "net2")):
                create_vm(on, resolve("tiny", names[vm], Overrides(memory_mib=128, network=names[net])), project=None)
                lifecycle.start(on, names[vm], wait=True, timeout=READY_TIMEOUT_S)
            for vm in ("vm1", "vm2"):
                names[f"{vm}_ip"] = str(wait_for(lambda vm=vm: _address(on, names[vm]), timeout=180))
            yield names
        finally:
            for vm in ("vm1", "vm2"):
                with contextlib.suppress(Exception):
                    lifecycle.delete(on, names[vm], force=True)
            for net in ("net1", "net2"):
                with contextlib.suppress(Exception):
                    networks.delete_network(on, names[net])


def test_each_vm_reaches_its_gateway_and_not_the_other_project(ns_host: NamespaceHost,
                                                              two_projects: dict[str, str]) -> None:
    names = two_projects
    with ns_host.connect() as on:
        assert names["vm1_ip"].startswith(f"10.231.{_NET}.") and names["vm2_ip"].startswith(f"10.231.{_NET + 1}.")
        assert "filterref" in on.lookup(names["vm1"]).xml() and "clean-traffic" in on.lookup(names["vm1"]).xml()
        assert _sh(on, names["vm1"], f"ping -c 2 -W 3 10.231.{_NET}.1")[0] == 0
        assert _sh(on, names["vm2"], f"ping -c 2 -W 3 10.231.{_NET + 1}.1")[0] == 0
        assert f"default via 10.231.{_NET}.1" in _sh(on, names["vm1"], "ip route")[1]
        assert _sh(on, names["vm1"], f"ping -c 2 -W 3 {names['vm2_ip']}")[0] != 0
        assert _sh(on, names["vm2"], f"ping -c 2 -W 3 {names['vm1_ip']}")[0] != 0
    # The bridges live in the namespace host, not on this machine.
    bridge = bridge_name(names["net1"])
    here = subprocess.run(["ip", "link", "show", bridge], capture_output=True, text=True)
    there = subprocess.run(["ip", "-n", ns_host.netns, "link", "show", bridge], capture_output=True, text=True)
    assert here.returncode != 0 and there.returncode == 0


def test_a_spoofed_address_loses_its_network(ns_host: NamespaceHost, two_projects: dict[str, str]) -> None:
    names = two_projects
    own = names["vm1_ip"]
    spoofed = f"10.231.{_NET}.77" if not own.endswith(".77") else f"10.231.{_NET}.78"
    with ns_host.connect() as on:
        vm = names["vm1"]
        try:
            assert _sh(on, vm, f"ip addr flush dev eth0 && ip addr add {spoofed}/24 dev eth0")[0] == 0
            assert _sh(on, vm, f"ping -c 2 -W 3 10.231.{_NET}.1")[0] != 0
        finally:
            _sh(on, vm, f"ip addr flush dev eth0; ip addr add {own}/24 dev eth0")
        assert wait_for(lambda: _sh(on, vm, f"ping -c 1 -W 3 10.231.{_NET}.1")[0] == 0, timeout=60)


def test_overlap_and_use_by_vms_are_refused(ns_host: NamespaceHost, two_projects: dict[str, str]) -> None:
    with ns_host.connect() as on:
        before = {n.name for n in networks.list_networks(on)}
        with pytest.raises(Conflict, match="overlaps"):
            networks.create_network(on, "overlapping", subnet=f"10.231.{_NET}.0/25")
        with pytest.raises(Conflict, match="used by VM"):
            networks.delete_network(on, two_projects["net1"])
        assert {n.name for n in networks.list_networks(on)} == before

"""Port forwards, end to end, inside a libvirtd in network + mount namespaces of this test's own (nshosts.py).

vmdeck itself runs there too (nsenter into the namespace host's namespaces: its qemu:///system, its
firewall, its 127.0.0.1), as it runs on a real host beside libvirtd. A tiny guest on a vmdeck NAT network
serves a page with busybox httpd; the forward from the namespace's 127.0.0.1 answers with it, after a power
cycle and a `vmdeck serve` start (the rules emptied first, as by a host reboot), and its rules go when the
VM goes. Bad input is refused with its exit code, and leaves nothing behind. All guest traffic stays
inside the namespace: the test's client runs in it and connects to its 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from itest_support import PREFIX, READY_TIMEOUT_S, wait_for
from nshosts import NamespaceHost, start_hosts, stop_hosts

from vmdeck.domxml.network import bridge_name
from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.agent import guest_exec
from vmdeck.vm.create import create_vm

_NET = 100 + os.getpid() % 100  # 10.233.<_NET>.0/24 and the next: unique per test process
_SRC = str(Path(__file__).resolve().parents[2] / "src")
MARK = "vmdeck-forward-ok"
PASSWORD = "forwards-admin-password"
# A client in the namespace: one HTTP request to 127.0.0.1:PORT, the answer on stdout.
_FETCH = ("import socket,sys\n"
          "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])),timeout=5)\n"
          "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
          "print(b''.join(iter(lambda: s.recv(4096), b'')).decode(errors='replace'))\n")


@dataclass
class World:
    ns: NamespaceHost
    db: str
    project: str
    net: str
    vm: str

    def enter(self) -> list[str]:
        """nsenter into the namespace host's network and mount namespaces (those of its virtlogd)."""
        pid = (self.ns.root / "virtlogd.pid").read_text().strip()
        return ["nsenter", f"--net=/proc/{pid}/ns/net", f"--mount=/proc/{pid}/ns/mnt", "--"]

    def env(self) -> dict[str, str]:
        return {**os.environ, "VMDECK_DB": self.db, "VMDECK_URI": "qemu:///system",
                "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}

    def vmdeck(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.enter(), sys.executable, "-m", "vmdeck.cli.main", *args], env=self.env(),
                              capture_output=True, text=True, timeout=600)

    def ok(self, *args: str) -> str:
        done = self.vmdeck(*args)
        assert done.returncode == 0, f"vmdeck {' '.join(args)}: {done.stderr.strip()}"
        return done.stdout

    def nft(self) -> str:
        """The namespace's whole nftables ruleset."""
        return subprocess.run(["ip", "netns", "exec", self.ns.netns, "nft", "list", "ruleset"], capture_output=True,
                              text=True, timeout=30).stdout

    def table(self) -> str:
        """vmdeck's own table in the namespace ("" when there is none)."""
        return subprocess.run(["ip", "netns", "exec", self.ns.netns, "nft", "list", "table", "ip", "vmdeck"],
                              capture_output=True, text=True, timeout=30).stdout

    def route_localnet(self) -> str:
        """The network's bridge's route_localnet in the namespace ("1" while a forward from 127.0.0.1 needs it)."""
        path = f"/proc/sys/net/ipv4/conf/{bridge_name(self.net)}/route_localnet"
        return subprocess.run(["ip", "netns", "exec", self.ns.netns, "cat", path], capture_output=True, text=True,
                              timeout=30).stdout.strip()

    def fetch(self, port: int) -> str:
        done = subprocess.run(["ip", "netns", "exec", self.ns.netns, sys.executable, "-c", _FETCH, str(port)],
                              capture_output=True, text=True, timeout=30)
        return done.stdout if done.returncode == 0 else ""


def _sh(on: Host, vm: str, script: str) -> tuple[int, str]:
    done = guest_exec(on.lookup(vm), ["/bin/sh", "-c", script], timeout=120)
    return done.exit_code, done.stdout.decode() + done.stderr.decode()


def _serve_page(world: World) -> None:
    """busybox httpd on the guest's port 8080, once the guest has its address."""
    with world.ns.connect() as on:
        wait_for(lambda: "inet " in _sh(on, world.vm, "ip -o -4 addr show eth0")[1], timeout=180)
        code, out = _sh(on, world.vm, f"mkdir -p /tmp/www && echo {MARK} > /tmp/www/index.html && "
                                      "httpd -p 8080 -h /tmp/www")
        assert code == 0, out


@pytest.fixture(scope="module")
def world(host: Host) -> Iterator[World]:
    ns = start_hosts(host, 1)[0]
    made = World(ns, str(Path(tempfile.mkdtemp(prefix=f"vmdeck-test-fwd-{os.getpid()}-")) / "vmdeck.sqlite"),
                 f"fw{os.getpid()}", f"fw-{os.getpid()}", f"{PREFIX}fwd")
    try:
        made.ok("network", "create", made.net, "--mode", "nat", "--subnet", f"10.233.{_NET}.0/24",
                "--project", made.project)
        with ns.connect() as on:
            create_vm(on, resolve("tiny", made.vm, Overrides(memory_mib=128, network=made.net)),
                      project=made.project)
            lifecycle.start(on, made.vm, wait=True, timeout=READY_TIMEOUT_S)
        _serve_page(made)
        yield made
    finally:
        with contextlib.suppress(VmdeckError), ns.connect() as on:
            for vm in (made.vm, f"{made.vm}-iso"):
                with contextlib.suppress(VmdeckError):
                    lifecycle.delete(on, vm, force=True)
        stop_hosts([ns])


def test_a_forward_from_loopback_reaches_the_guest(world: World) -> None:
    added = json.loads(world.ok("forward", "add", world.vm, "18080:8080", "--json"))
    assert added["address"] == "127.0.0.1" and added["guest_port"] == 8080
    assert added["guest_ip"].startswith(f"10.233.{_NET}.")
    assert MARK in str(wait_for(lambda: world.fetch(18080), timeout=60))
    # The guest's address is now reserved for its NIC: it stays across reboots.
    shown = json.loads(world.ok("network", "show", world.net, "--json"))
    assert [r["ip"] for r in shown["reservations"]] == [added["guest_ip"]]
    assert f"dnat to {added['guest_ip']}:8080" in world.nft() and world.route_localnet() == "1"
    listed = json.loads(world.ok("forward", "list", world.vm, "--json"))
    assert [(f["host_port"], f["project"]) for f in listed] == [(18080, world.project)]
    # One audit line, in the VM's project.
    lines = json.loads(world.ok("audit", "--vm", world.vm, "--json"))
    assert [(e["action"], e["project"], e["status"]) for e in lines if e["action"] == "vm.forwards"] == [
        ("vm.forwards", world.project, 201)]


def _from_here(address: str, port: int) -> str:
    """One HTTP request from this machine's namespace, across the test's LAN into the namespace host."""
    try:
        with socket.create_connection((address, port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return b"".join(iter(lambda: conn.recv(4096), b"")).decode(errors="replace")
    except OSError:
        return ""


def test_a_forward_from_the_hosts_own_address_crosses_libvirts_firewall(world: World) -> None:
    address = world.ns.addr  # the namespace host's address on the LAN the test made
    world.ok("forward", "add", world.vm, "18090:8080", "--address", address)
    try:
        accepts = subprocess.run(["ip", "netns", "exec", world.ns.netns, "iptables", "-w", "-S", "LIBVIRT_FWI"],
                                 capture_output=True, text=True, timeout=30).stdout
        assert accepts.count("vmdeck-forward") == 1 and "DNAT" in accepts
        assert MARK in str(wait_for(lambda: _from_here(address, 18090), timeout=60))
    finally:
        world.ok("forward", "remove", world.vm, "18090", "--address", address)
    accepts = subprocess.run(["ip", "netns", "exec", world.ns.netns, "iptables", "-w", "-S", "LIBVIRT_FWI"],
                             capture_output=True, text=True, timeout=30).stdout
    assert "vmdeck-forward" not in accepts and f"{address} tcp dport 18090" not in world.table()
    assert _from_here(address, 18090) == ""
    assert [f["host_port"] for f in json.loads(world.ok("forward", "list", "--json"))] == [18080]


def test_bad_input_is_refused_and_leaves_nothing(world: World) -> None:
    before, rules = world.ok("forward", "list", "--json"), world.table()
    taken = world.vmdeck("forward", "add", world.vm, "18080:22")
    assert taken.returncode == 4 and "forwarded already" in taken.stderr, taken.stderr
    # A port a process of the host listens on.
    listener = subprocess.Popen([*world.enter(), sys.executable, "-c",
                                 "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',18081)); s.listen();"
                                 "print('up',flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "up"
        busy = world.vmdeck("forward", "add", world.vm, "18081")
        assert busy.returncode == 4 and "in use by another process" in busy.stderr, busy.stderr
    finally:
        listener.kill()
        listener.wait()
    bad = world.vmdeck("forward", "add", world.vm, "70000")
    assert bad.returncode == 2 and "65535" in bad.stderr
    missing = world.vmdeck("forward", "remove", world.vm, "19999")
    assert missing.returncode == 3 and "no forward of port 19999/tcp" in missing.stderr, missing.stderr
    nobody = world.vmdeck("forward", "add", f"{world.vm}-nothere", "18084")
    assert nobody.returncode == 3, nobody.stderr
    # A VM whose only NIC is on an isolated network.
    iso_net, iso_vm = f"{world.net}-iso", f"{world.vm}-iso"
    world.ok("network", "create", iso_net, "--mode", "isolated", "--subnet", f"10.233.{_NET + 1}.0/24",
             "--project", world.project)
    with world.ns.connect() as on:
        create_vm(on, resolve("tiny", iso_vm, Overrides(memory_mib=128, network=iso_net)), project=world.project)
    try:
        isolated = world.vmdeck("forward", "add", iso_vm, "18082")
        assert isolated.returncode == 2 and "no NIC on a vmdeck NAT network" in isolated.stderr, isolated.stderr
    finally:
        with world.ns.connect() as on:
            lifecycle.delete(on, iso_vm, force=True)
        world.ok("network", "delete", iso_net)
    # The project's quotas: one forward (it has one), one network (it has one).
    world.ok("project", "quota", world.project, "--forwards", "1", "--networks", "1")
    try:
        over = world.vmdeck("forward", "add", world.vm, "18083:8080")
        assert over.returncode == 4 and "quota exceeded" in over.stderr and "forwards limit 1" in over.stderr
        no_net = world.vmdeck("network", "create", f"{world.net}-2", "--subnet", f"10.233.{_NET + 1}.0/24",
                              "--project", world.project)
        assert no_net.returncode == 4 and "networks limit 1" in no_net.stderr, no_net.stderr
        shown = json.loads(world.ok("project", "show", world.project, "--json"))
        assert shown["quota"]["forwards"] == {"limit": 1, "used": 1}
        assert shown["quota"]["networks"] == {"limit": 1, "used": 1}
    finally:
        world.ok("project", "quota", world.project, "--unlimited", "forwards", "--unlimited", "networks")
    assert world.ok("forward", "list", "--json") == before and world.table() == rules
    assert f"{world.net}-2" not in world.ok("network", "list")
    assert json.loads(world.ok("network", "show", world.net, "--json"))["vms"] == [world.vm]


def test_the_forward_survives_a_power_cycle_and_a_server_start_and_shows_on_the_vm_page(world: World) -> None:
    # A host reboot empties the kernel's rules; `vmdeck start` puts the VM's back.
    world.ok("poweroff", world.vm)
    subprocess.run(["ip", "netns", "exec", world.ns.netns, "nft", "delete", "table", "ip", "vmdeck"], check=True)
    world.ok("start", world.vm, "--wait")
    _serve_page(world)
    assert MARK in str(wait_for(lambda: world.fetch(18080), timeout=60))
    # ... and so does `vmdeck serve` when it starts.
    subprocess.run(["ip", "netns", "exec", world.ns.netns, "nft", "delete", "table", "ip", "vmdeck"], check=True)
    assert world.fetch(18080) == ""
    server = subprocess.Popen([*world.enter(), sys.executable, "-m", "vmdeck.cli.main", "serve", "--port", "18470"],
                              env={**world.env(), "VMDECK_ADMIN_PASSWORD": PASSWORD}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        assert MARK in str(wait_for(lambda: world.fetch(18080), timeout=120))
        # The VM page shows the forward, and adds and removes one (Chromium in the namespace: forwards_page.py).
        page = subprocess.run([*world.enter(), sys.executable, str(Path(__file__).with_name("forwards_page.py")),
                               "http://127.0.0.1:18470", world.vm, PASSWORD, MARK], env=world.env(),
                              capture_output=True, text=True, timeout=600)
        assert page.returncode == 0, page.stderr[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_deleting_the_vm_removes_its_rules(world: World) -> None:
    guest_ip = json.loads(world.ok("forward", "list", world.vm, "--json"))[0]["guest_ip"]
    world.ok("delete", world.vm, "--force")
    assert json.loads(world.ok("forward", "list", "--json")) == []
    rules = world.nft()
    assert "table ip vmdeck" not in rules and guest_ip not in rules
    assert world.route_localnet() == "0"  # its guard rule went with the table
    assert world.fetch(18080) == ""
    # The address its first forward reserved is free again: no lease outlives the NIC it was for.
    shown = json.loads(world.ok("network", "show", world.net, "--json"))
    assert guest_ip not in [r["ip"] for r in shown["reservations"]]

"""Live migration between two libvirt hosts on this one machine.

The second host is a libvirtd in network and mount namespaces of its own (tests/integration/nshosts.py):
it shares only /var/lib/vmdeck/images with this host, so disks are NOT shared storage and migration
copies them, as between two real hosts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from itest_support import wait_for
from nshosts import NamespaceHost, start_hosts, stop_hosts

from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import Conflict, StateError
from vmdeck.host.connection import Host
from vmdeck.vm import lifecycle
from vmdeck.vm.agent import guest_exec
from vmdeck.vm.migrate import migrate


@pytest.fixture(scope="module")
def second_ns(host: Host) -> Iterator[NamespaceHost]:
    """A second libvirt host in its own namespaces (tests/integration/nshosts.py); all removed afterwards."""
    (ns_host,) = start_hosts(host, 1)
    try:
        yield ns_host
    finally:
        stop_hosts([ns_host])


@pytest.fixture(scope="module")
def second_host(second_ns: NamespaceHost) -> Iterator[Host]:
    with second_ns.connect() as dest:
        yield dest


def _guest(host: Host, vm: str, command: str) -> str:
    result = guest_exec(host.lookup(vm), ["/bin/sh", "-c", command], timeout=30)
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode().strip()


def _disk_token(host: Host, vm: str) -> str:
    """The first 32 bytes of the guest's /dev/vda, read from the disk (the page cache dropped first)."""
    return _guest(host, vm, "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=32 count=1 2>/dev/null")


def test_live_migration_keeps_the_guest_running(host: Host, second_host: Host, second_ns: NamespaceHost,
                                                  vm_factory, cli) -> None:
    vm = vm_factory(suffix="migrate")
    token, disk_token = uuid.uuid4().hex, uuid.uuid4().hex
    _guest(host, vm, f"echo {token} > /tmp/vmdeck-token; printf {disk_token} > /dev/vda; sync")
    boot_id = _guest(host, vm, "cat /proc/sys/kernel/random/boot_id")
    disk = parse_domain(host.lookup(vm).raw.XMLDesc(0)).owned_volumes[0]
    steps: list[str] = []

    # Refused before anything moves: an unreachable destination, --offline for a running VM, no such VM.
    unreachable = cli("migrate", vm, "--to", f"qemu+tcp://{second_ns.host_addr}:1/system")
    assert unreachable.returncode == 5 and "cannot connect" in unreachable.stderr, unreachable.stderr
    running = cli("migrate", vm, "--to", second_host.uri, "--offline")
    assert running.returncode == 4 and "it is running" in running.stderr, running.stderr
    missing = cli("migrate", "vmdeck-test-no-such-vm", "--to", second_host.uri)
    assert missing.returncode == 3, missing.stderr
    assert host.lookup(vm).raw.isActive() and not second_host.exists(vm)

    summary = migrate(host, vm, second_host.uri, migrate_uri=f"tcp://{second_ns.addr}", progress=steps.append)
    print(summary, *steps, sep="\n")

    # The same guest, not a rebooted one: its tmpfs file and its boot id survived the move,
    # and its disk was copied (read back from the destination's disk, not the guest's cache).
    # Its agent may take a moment to answer after the move on a loaded machine.
    assert wait_for(lambda: _guest(second_host, vm, "cat /tmp/vmdeck-token"), timeout=300) == token
    assert wait_for(lambda: _guest(second_host, vm, "cat /proc/sys/kernel/random/boot_id"), timeout=300) == boot_id
    assert wait_for(lambda: _disk_token(second_host, vm), timeout=300) == disk_token
    assert second_host.lookup(vm).raw.isPersistent()
    # Gone from the source, with its (now stale) disk; the destination has its own copy.
    assert not host.exists(vm)
    assert not Path(disk).exists()
    assert disk in parse_domain(second_host.lookup(vm).raw.XMLDesc(0)).owned_volumes
    assert any(step.startswith("migrating:") for step in steps)

    # Refused: onto a host that already has a VM of that name; a live move of a VM that is not running.
    with pytest.raises(Conflict, match="already has a VM"):
        migrate(second_host, vm, second_host.uri)
    second_host.lookup(vm).raw.destroy()
    with pytest.raises(StateError, match="shut off"):
        migrate(second_host, vm, host.uri)

    # Offline back home through the CLI: the definition and the disk's bytes come back, and the VM boots
    # here again with the data it wrote on the disk.
    moved = cli("-c", second_host.uri, "migrate", vm, "--to", host.uri, "--offline")
    assert moved.returncode == 0, moved.stderr
    assert f"{vm} moved to {host.uri}" in moved.stdout
    assert not second_host.exists(vm)
    assert host.lookup(vm).raw.isPersistent() and not host.lookup(vm).raw.isActive()
    lifecycle.start(host, vm, wait=True, timeout=600)
    assert _disk_token(host, vm) == disk_token
    assert _guest(host, vm, "cat /proc/sys/kernel/random/boot_id") != boot_id


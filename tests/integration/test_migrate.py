"""Live migration between two libvirt hosts on this one machine.

The second host is a second libvirtd (and its virtlogd) in a network namespace of its
own, reached over a veth pair, and in a mount namespace of its own: tmpfs on /run and
private directories bind-mounted over /etc/libvirt, /var/lib/libvirt, /var/log/libvirt,
/var/cache/libvirt and vmdeck's pool directory. It shares only /var/lib/vmdeck/images
(the tiny guest's kernel and initrd, at the same path as on the first host), so disks
are NOT shared storage: migration copies them, as between two real hosts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import Conflict, StateError, VmdeckError
from vmdeck.host.connection import Host, connect
from vmdeck.paths import pool_dir
from vmdeck.storage.pool import delete_volume, ensure_pool
from vmdeck.vm import lifecycle
from vmdeck.vm.agent import guest_exec
from vmdeck.vm.migrate import migrate

# Per-run names and a /30 of 10.250.0.0/16 picked from the pid, so two concurrent runs do not collide.
_TAG = os.getpid() % 16000
NETNS = f"vmdeck-test-{os.getpid()}"
VETH_HOST, VETH_NS = f"vmdm{_TAG}a", f"vmdm{_TAG}b"
_NET = 4 * _TAG
HOST_ADDR = f"10.250.{_NET // 256}.{_NET % 256 + 1}"
NS_ADDR = f"10.250.{_NET // 256}.{_NET % 256 + 2}"

# Runs inside `ip netns exec NS unshare --mount`: the daemons started here stay in both namespaces.
_START = r"""
set -eu
dir=$1
ip link set lo up
mount --make-rprivate /
mount -t tmpfs -o mode=755 vmdeck-migrate-run /run
mkdir -p /run/libvirt /run/lock
mount --bind "$dir/etc" /etc/libvirt
mount --bind "$dir/lib" /var/lib/libvirt
mount --bind "$dir/log" /var/log/libvirt
mount --bind "$dir/cache" /var/cache/libvirt
mount --bind "$dir/pool" "$2"
virtlogd -d -p "$dir/virtlogd.pid"
libvirtd -d -l -f "$dir/etc/libvirtd.conf" -p "$dir/libvirtd.pid"
"""


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{' '.join(argv[:4])} ...: {done.stderr.strip()}"


def _kill_pidfile(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _make_state_dir(root: Path) -> None:
    """The second host's private /etc/libvirt (no domains, pools or networks) and state dirs."""
    etc = root / "etc"
    shutil.copytree("/etc/libvirt", etc, ignore=shutil.ignore_patterns("qemu", "storage", "secrets"))
    (etc / "qemu").mkdir()
    (etc / "storage").mkdir()
    (etc / "libvirtd.conf").write_text(
        f'listen_tls = 0\nlisten_tcp = 1\nlisten_addr = "{NS_ADDR}"\nauth_tcp = "none"\n'
        # libvirt refuses to migrate to a host with its own UUID (the same machine's SMBIOS one).
        f'host_uuid = "{uuid.uuid4()}"\n'
        f'log_outputs = "3:file:{root}/libvirtd.log"\n'
    )
    # Without cgroups here the two libvirtds cannot pick the same machine cgroup for a VM id.
    with (etc / "qemu.conf").open("a") as conf:
        conf.write('\ncgroup_controllers = [ ]\n')
    for sub in ("lib/qemu/channel/target", "log/qemu", "cache/qemu", "pool"):
        (root / sub).mkdir(parents=True)
    shutil.chown(root / "lib/qemu", "libvirt-qemu", "libvirt-qemu")
    (root / "pool").chmod(0o755)
    root.chmod(0o755)


def _remove_netns(name: str, veth: str) -> None:
    # Anything still in the namespace (a QEMU of a failed run) goes too, so the namespace can go.
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "link", "del", veth], capture_output=True)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _dead(pid: str) -> bool:
    return pid.isdigit() and not Path(f"/proc/{pid}").exists()


def _remove_leftovers(host: Host) -> None:
    """What earlier runs that died before their teardown (their pid is gone) left behind."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for name in listed:
        parts = name.split("-")
        if name.startswith("vmdeck-test-") and len(parts) == 3 and _dead(parts[2]):
            _remove_netns(name, f"vmdm{int(parts[2]) % 16000}a")
    for old in Path(tempfile.gettempdir()).glob("vmdeck-test-migrate-*"):
        if _dead(old.name.split("-")[3]):
            shutil.rmtree(old, ignore_errors=True)
    # A peer-to-peer migration finishes in libvirtd even when the test died: then no VM owns the
    # source's stale disk any more, and the conftest's clean-up of leftover VMs cannot find it.
    for volume in pool_dir().glob("vmdeck-test-*"):
        parts = volume.name.split("-")
        if len(parts) > 2 and _dead(parts[2]) and not any(
            str(volume) in parse_domain(dom.XMLDesc(0)).owned_volumes for dom in host.conn.raw.listAllDomains(0)
        ):
            delete_volume(host, volume)


def _teardown(root: Path) -> None:
    with contextlib.suppress(VmdeckError, libvirt.libvirtError), connect(f"qemu+tcp://{NS_ADDR}/system") as dest:
        for dom in dest.conn.raw.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
    _kill_pidfile(root / "libvirtd.pid")
    _kill_pidfile(root / "virtlogd.pid")
    _remove_netns(NETNS, VETH_HOST)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def second_host(host: Host) -> Iterator[Host]:
    """A second libvirt host, reachable as qemu+tcp://NS_ADDR/system; all of it removed afterwards."""
    ensure_pool(host)  # the pool directory the second host's own pool is mounted over
    _remove_leftovers(host)
    root = Path(tempfile.mkdtemp(prefix=f"vmdeck-test-migrate-{os.getpid()}-"))
    try:
        _make_state_dir(root)
        _run("ip", "netns", "add", NETNS)
        _run("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
        _run("ip", "link", "set", VETH_NS, "netns", NETNS)
        _run("ip", "addr", "add", f"{HOST_ADDR}/30", "dev", VETH_HOST)
        _run("ip", "link", "set", VETH_HOST, "up")
        _run("ip", "netns", "exec", NETNS, "ip", "addr", "add", f"{NS_ADDR}/30", "dev", VETH_NS)
        _run("ip", "netns", "exec", NETNS, "ip", "link", "set", VETH_NS, "up")
        _run("ip", "netns", "exec", NETNS, "unshare", "--mount", "--", "sh", "-c", _START, "start",
             str(root), str(pool_dir()))
        deadline = time.monotonic() + 30
        while True:
            try:
                dest = connect(f"qemu+tcp://{NS_ADDR}/system")
                break
            except VmdeckError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with dest:
            yield dest
    finally:
        _teardown(root)


def _guest(host: Host, vm: str, command: str) -> str:
    result = guest_exec(host.lookup(vm), ["/bin/sh", "-c", command], timeout=30)
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode().strip()


def _disk_token(host: Host, vm: str) -> str:
    """The first 32 bytes of the guest's /dev/vda, read from the disk (the page cache dropped first)."""
    return _guest(host, vm, "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=32 count=1 2>/dev/null")


def test_live_migration_keeps_the_guest_running(host: Host, second_host: Host, vm_factory, cli) -> None:
    vm = vm_factory(suffix="migrate")
    token, disk_token = uuid.uuid4().hex, uuid.uuid4().hex
    _guest(host, vm, f"echo {token} > /tmp/vmdeck-token; printf {disk_token} > /dev/vda; sync")
    boot_id = _guest(host, vm, "cat /proc/sys/kernel/random/boot_id")
    disk = parse_domain(host.lookup(vm).raw.XMLDesc(0)).owned_volumes[0]
    steps: list[str] = []

    # Refused before anything moves: an unreachable destination, --offline for a running VM, no such VM.
    unreachable = cli("migrate", vm, "--to", f"qemu+tcp://{HOST_ADDR}:1/system")
    assert unreachable.returncode == 5 and "cannot connect" in unreachable.stderr, unreachable.stderr
    running = cli("migrate", vm, "--to", second_host.uri, "--offline")
    assert running.returncode == 4 and "it is running" in running.stderr, running.stderr
    missing = cli("migrate", "vmdeck-test-no-such-vm", "--to", second_host.uri)
    assert missing.returncode == 3, missing.stderr
    assert host.lookup(vm).raw.isActive() and not second_host.exists(vm)

    summary = migrate(host, vm, second_host.uri, migrate_uri=f"tcp://{NS_ADDR}", progress=steps.append)
    print(summary, *steps, sep="\n")

    # The same guest, not a rebooted one: its tmpfs file and its boot id survived the move,
    # and its disk was copied (read back from the destination's disk, not the guest's cache).
    assert _guest(second_host, vm, "cat /tmp/vmdeck-token") == token
    assert _guest(second_host, vm, "cat /proc/sys/kernel/random/boot_id") == boot_id
    assert _disk_token(second_host, vm) == disk_token
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


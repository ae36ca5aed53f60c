"""More libvirt hosts on this one machine: libvirtds in network + mount namespaces of their own.

Each host is a libvirtd (and its virtlogd) in its own network namespace and its own mount namespace.
The hosts of one test process share a LAN: a bridge in a namespace of its own, with a veth from each
host and one from this machine (where vmdeck runs), so hosts reach each other for peer-to-peer
migration without this machine routing anything (ip_forward stays as it is). Each host's mount
namespace has tmpfs on /run and private directories bind-mounted over /etc/libvirt,
/var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt and vmdeck's pool directory. It shares only
/var/lib/vmdeck/images (the tiny guest's kernel and initrd, at the same path as on every host), so
disks are NOT shared storage: migration copies them, as between real hosts. It is reachable as
qemu+tcp://ADDR/system (auth_tcp = none: tests only). `kill()` and `start()` break and bring back
its libvirtd; `pause()`/`resume()` freeze it (SIGSTOP: it accepts connections but never answers).

Names carry the test process's pid, so concurrent runs do not collide and the leftovers of a run
that died are recognised (its pid is gone) and removed by the next one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import VmdeckError
from vmdeck.host.connection import Host, connect
from vmdeck.paths import pool_dir
from vmdeck.storage.pool import delete_volume, ensure_pool

__all__ = ["NamespaceHost", "start_hosts", "stop_hosts", "remove_leftovers"]

_TAG = os.getpid() % 16000
# A /28 per test process (this machine .1, hosts .2 to .14) in 10.240.0.0/14, picked from the pid.
_BLOCK = (_TAG % 4096) * 16
_PREFIX = f"10.{240 + _TAG // 4096}.{_BLOCK // 256}."
_BASE = _BLOCK % 256
MAX_HOSTS = 13
_indices = itertools.count()  # every host of this process gets its own index: names and address
LAN_NS = f"vmdeck-test-{os.getpid()}-lan"
_LAN_ROOT_VETH = f"vmdn{_TAG}r"
_live: set[int] = set()  # indices of this process's running hosts: the LAN goes with the last one

# Runs inside `ip netns exec NS unshare --mount`: the daemons started here stay in both namespaces.
_MOUNT = r"""
set -eu
dir=$1
ip link set lo up
mount --make-rprivate /
mount -t tmpfs -o mode=755 vmdeck-nshost-run /run
mkdir -p /run/libvirt /run/lock
mount --bind "$dir/etc" /etc/libvirt
mount --bind "$dir/lib" /var/lib/libvirt
mount --bind "$dir/log" /var/log/libvirt
mount --bind "$dir/cache" /var/cache/libvirt
mount --bind "$dir/pool" "$2"
virtlogd -d -p "$dir/virtlogd.pid"
libvirtd -d -l -f "$dir/etc/libvirtd.conf" -p "$dir/libvirtd.pid"
"""
# A restart enters the mount namespace of the virtlogd that still runs (its /run, its bind mounts).
_RESTART = 'exec libvirtd -d -l -f "$1/etc/libvirtd.conf" -p "$1/libvirtd.pid"'


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(argv[:6])} ...: {done.stderr.strip()}"


def _pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


def _kill_pidfile(path: Path, sig: int = signal.SIGTERM) -> None:
    pid = _pid(path)
    if pid is None:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGCONT)  # a paused daemon cannot act on SIGTERM
        os.kill(pid, sig)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


class NamespaceHost:
    """One extra libvirt host (see the module docstring)."""

    def __init__(self) -> None:
        self.index = next(_indices)
        self.netns = f"vmdeck-test-{os.getpid()}-{self.index}"
        assert self.index < MAX_HOSTS, "too many namespace hosts in one test process"
        self.veth_ns, self.veth_lan = f"vmdn{_TAG}x{self.index}a", f"vmdn{_TAG}x{self.index}b"
        self.host_addr = f"{_PREFIX}{_BASE + 1}"  # this machine, on the LAN
        self.addr = f"{_PREFIX}{_BASE + 2 + self.index}"
        self.uri = f"qemu+tcp://{self.addr}/system"
        self.root = Path(tempfile.mkdtemp(prefix=f"vmdeck-test-nshost-{os.getpid()}-{self.index}-"))

    def _make_state_dir(self) -> None:
        """This host's private /etc/libvirt (no domains, pools or networks) and state dirs."""
        root = self.root
        etc = root / "etc"
        shutil.copytree("/etc/libvirt", etc, ignore=shutil.ignore_patterns("qemu", "storage", "secrets"))
        (etc / "qemu").mkdir()
        (etc / "storage").mkdir()
        (etc / "libvirtd.conf").write_text(
            f'listen_tls = 0\nlisten_tcp = 1\nlisten_addr = "{self.addr}"\nauth_tcp = "none"\n'
            # libvirt refuses to migrate to a host with its own UUID (the same machine's SMBIOS one).
            f'host_uuid = "{uuid.uuid4()}"\n'
            f'log_outputs = "3:file:{root}/libvirtd.log"\n'
        )
        # Without cgroups here the libvirtds cannot pick the same machine cgroup for a VM id.
        with (etc / "qemu.conf").open("a") as conf:
            conf.write('\ncgroup_controllers = [ ]\n')
        for sub in ("lib/qemu/channel/target", "log/qemu", "cache/qemu", "pool"):
            (root / sub).mkdir(parents=True)
        shutil.chown(root / "lib/qemu", "libvirt-qemu", "libvirt-qemu")
        (root / "pool").chmod(0o755)
        root.chmod(0o755)

    def create(self) -> None:
        """Namespaces, veth pair, state directories and the daemons; returns once libvirtd answers."""
        self._make_state_dir()
        if not _live:
            _make_lan()
        _live.add(self.index)
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", self.veth_ns, "netns", self.netns, "type", "veth", "peer", "name", self.veth_lan,
             "netns", LAN_NS)
        _run("ip", "-n", LAN_NS, "link", "set", self.veth_lan, "master", "br0", "up")
        _run("ip", "-n", self.netns, "addr", "add", f"{self.addr}/28", "dev", self.veth_ns)
        _run("ip", "-n", self.netns, "link", "set", self.veth_ns, "up")
        _run("ip", "netns", "exec", self.netns, "unshare", "--mount", "--", "sh", "-c", _MOUNT, "start",
             str(self.root), str(pool_dir()))
        self.wait_ready()

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                connect(self.uri).close()
                return
            except VmdeckError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def connect(self) -> Host:
        return connect(self.uri)

    @property
    def libvirtd_pid(self) -> int | None:
        return _pid(self.root / "libvirtd.pid")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop this host's libvirtd: SIGKILL (a crash) or SIGTERM (`systemctl restart`'s first half);
        its QEMUs keep running either way, as on a real host."""
        pid = self.libvirtd_pid
        assert pid is not None
        os.kill(pid, sig)
        # Gone when this returns (a start() beside a dying libvirtd would race it); SIGTERM's clean
        # shutdown can take long on a loaded machine, hence the generous bound.
        deadline = time.monotonic() + 60
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
            raise AssertionError(f"libvirtd (pid {pid}) still runs 60 s after signal {sig}")
        (self.root / "libvirtd.pid").unlink(missing_ok=True)

    def start(self) -> None:
        """Start libvirtd again in the same namespaces (after kill())."""
        logd = _pid(self.root / "virtlogd.pid")
        assert logd is not None
        _run("nsenter", f"--net=/proc/{logd}/ns/net", f"--mount=/proc/{logd}/ns/mnt", "--", "sh", "-c",
             _RESTART, "restart", str(self.root))
        self.wait_ready()

    def pause(self) -> None:
        os.kill(self.libvirtd_pid or 0, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.libvirtd_pid or 0, signal.SIGCONT)

    def destroy(self) -> None:
        """Stop every VM, the daemons, and remove the namespaces and state directories."""
        with contextlib.suppress(OSError, TypeError):
            os.kill(self.libvirtd_pid or -1, signal.SIGCONT)
        with contextlib.suppress(VmdeckError), connect(self.uri) as opened:
            for dom in opened.conn.domains():
                with contextlib.suppress(VmdeckError):
                    if dom.is_active():
                        dom.poweroff()
        _kill_pidfile(self.root / "libvirtd.pid")
        _kill_pidfile(self.root / "virtlogd.pid")
        _remove_netns(self.netns)
        shutil.rmtree(self.root, ignore_errors=True)
        _live.discard(self.index)
        if not _live:
            # The root-side veth first: deleting it is synchronous, a namespace's teardown is not
            # (the next LAN of this process would find the old leg still there).
            _remove_netns(LAN_NS, _LAN_ROOT_VETH)


def _make_lan() -> None:
    """The bridge the hosts share, in its own namespace, with this machine's leg at .1."""
    subprocess.run(["ip", "link", "del", _LAN_ROOT_VETH], capture_output=True)  # a leftover of this process
    _run("ip", "netns", "add", LAN_NS)
    _run("ip", "-n", LAN_NS, "link", "add", "br0", "type", "bridge")
    _run("ip", "-n", LAN_NS, "link", "set", "br0", "up")
    _run("ip", "link", "add", _LAN_ROOT_VETH, "type", "veth", "peer", "name", "uplink", "netns", LAN_NS)
    _run("ip", "-n", LAN_NS, "link", "set", "uplink", "master", "br0", "up")
    _run("ip", "addr", "add", f"{_PREFIX}{_BASE + 1}/28", "dev", _LAN_ROOT_VETH)
    _run("ip", "link", "set", _LAN_ROOT_VETH, "up")


def _remove_netns(name: str, veth: str | None = None) -> None:
    # Anything still in the namespace (a QEMU of a failed run) goes too, so the namespace can go;
    # its veths go with it (and their peers in other namespaces).
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(int(pid), signal.SIGKILL)
    if veth:
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _dead(pid: str) -> bool:
    return pid.isdigit() and not Path(f"/proc/{pid}").exists()


def remove_leftovers(host: Host) -> None:
    """What earlier runs that died before their teardown (their pid is gone) left behind."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for name in listed:
        parts = name.split("-")
        # Only names this module (or test_migrate before it) makes: vmdeck-test-PID, -PID-N, -PID-lan.
        ours = len(parts) == 3 or (len(parts) == 4 and (parts[3].isdigit() or parts[3] == "lan"))
        if name.startswith("vmdeck-test-") and ours and _dead(parts[2]):
            tag = int(parts[2]) % 16000
            # vmdm*: the older per-test veth of test_migrate; vmdn*r: this machine's leg on a LAN.
            _remove_netns(name, f"vmdm{tag}a" if len(parts) == 3 else f"vmdn{tag}r")
    for old in Path(tempfile.gettempdir()).glob("vmdeck-test-*-*"):
        parts = old.name.split("-")
        if parts[2] in ("migrate", "nshost") and len(parts) > 3 and _dead(parts[3]):
            shutil.rmtree(old, ignore_errors=True)
    # A peer-to-peer migration finishes in libvirtd even when the test died: then no VM owns the
    # source's stale disk any more, and the conftest's clean-up of leftover VMs cannot find it.
    for volume in pool_dir().glob("vmdeck-test-*"):
        parts = volume.name.split("-")
        if len(parts) > 2 and _dead(parts[2]) and not any(
            str(volume) in parse_domain(dom.xml()).owned_volumes for dom in host.conn.domains()
        ):
            delete_volume(host, volume)


def start_hosts(local: Host, count: int) -> list[NamespaceHost]:
    """`count` fresh namespace hosts, all answering; on failure the ones made are removed again."""
    ensure_pool(local)  # the pool directory each host's own pool is mounted over
    remove_leftovers(local)
    made: list[NamespaceHost] = []
    try:
        for _ in range(count):
            made.append(NamespaceHost())
            made[-1].create()
    except BaseException:
        stop_hosts(made)
        raise
    return made


def stop_hosts(hosts: list[NamespaceHost]) -> None:
    for ns_host in hosts:
        ns_host.destroy()

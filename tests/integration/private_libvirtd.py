"""A libvirtd of the test's own, in a network and mount namespace of its own, that the test may stop,
kill and restart (never the system one). Reached as qemu+tcp://ADDR/system over a veth pair.

As in test_migrate.py: tmpfs on /run, private /etc/libvirt, /var/lib/libvirt, /var/log/libvirt,
/var/cache/libvirt and vmdeck's pool folder; /var/lib/vmdeck/images (the tiny guest) is shared.
virtlogd keeps the mount namespace alive between libvirtd restarts; the VMs' QEMUs live in it too.
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
from pathlib import Path

from vmdeck.errors import VmdeckError
from vmdeck.host.connection import connect
from vmdeck.paths import pool_dir

_START = r"""
set -eu
dir=$1
ip link set lo up
mount --make-rprivate /
mount -t tmpfs -o mode=755 vmdeck-private-run /run
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
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(argv[:4])} ...: {done.stderr.strip()}"


def _pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().strip())
        if Path(f"/proc/{pid}").exists():
            return pid
    return None


class PrivateLibvirtd:
    def __init__(self, tag: str = "r") -> None:
        number = (os.getpid() * 7 + ord(tag[0])) % 16000
        self.netns = f"vmdeck-test-{os.getpid()}-{tag}"
        self.veth_host, self.veth_ns = f"vmdr{number}a", f"vmdr{number}b"
        net = 4 * number
        self.host_addr = f"10.251.{net // 256}.{net % 256 + 1}"
        self.addr = f"10.251.{net // 256}.{net % 256 + 2}"
        self.uri = f"qemu+tcp://{self.addr}/system"
        self.root = Path(tempfile.mkdtemp(prefix=f"vmdeck-test-libvirtd-{os.getpid()}-", dir="/var/tmp"))

    def _make_state_dir(self) -> None:
        root = self.root
        etc = root / "etc"
        shutil.copytree("/etc/libvirt", etc, ignore=shutil.ignore_patterns("qemu", "storage", "secrets"))
        (etc / "qemu").mkdir()
        (etc / "storage").mkdir()
        (etc / "libvirtd.conf").write_text(
            f'listen_tls = 0\nlisten_tcp = 1\nlisten_addr = "{self.addr}"\nauth_tcp = "none"\n'
            f'host_uuid = "{uuid.uuid4()}"\nlog_outputs = "3:file:{root}/libvirtd.log"\n')
        with (etc / "qemu.conf").open("a") as conf:
            conf.write('\ncgroup_controllers = [ ]\n')
        for sub in ("lib/qemu/channel/target", "log/qemu", "cache/qemu", "pool"):
            (root / sub).mkdir(parents=True)
        shutil.chown(root / "lib/qemu", "libvirt-qemu", "libvirt-qemu")
        (root / "pool").chmod(0o755)
        root.chmod(0o755)

    def start(self) -> None:
        pool_dir().mkdir(parents=True, exist_ok=True)
        self._make_state_dir()
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns)
        _run("ip", "link", "set", self.veth_ns, "netns", self.netns)
        _run("ip", "addr", "add", f"{self.host_addr}/30", "dev", self.veth_host)
        _run("ip", "link", "set", self.veth_host, "up")
        _run("ip", "netns", "exec", self.netns, "ip", "addr", "add", f"{self.addr}/30", "dev", self.veth_ns)
        _run("ip", "netns", "exec", self.netns, "ip", "link", "set", self.veth_ns, "up")
        _run("ip", "netns", "exec", self.netns, "unshare", "--mount", "--", "sh", "-c", _START, "start",
             str(self.root), str(pool_dir()))
        self.wait_up()

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                connect(self.uri).close()
                return
            except VmdeckError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def pid(self) -> int | None:
        return _pid(self.root / "libvirtd.pid")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Stop libvirtd only (its VMs' QEMUs keep running, as with `systemctl restart libvirtd`)."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists():
            assert time.monotonic() < deadline, "libvirtd did not stop"
            time.sleep(0.05)

    def relaunch(self) -> None:
        """libvirtd again, inside the same namespaces (entered through virtlogd, which stays)."""
        holder = _pid(self.root / "virtlogd.pid")
        assert holder is not None, "virtlogd of the private host is gone"
        (self.root / "libvirtd.pid").unlink(missing_ok=True)
        _run("nsenter", "-t", str(holder), "-m", "-n", "--", "libvirtd", "-d", "-l", "-f",
             str(self.root / "etc" / "libvirtd.conf"), "-p", str(self.root / "libvirtd.pid"))

    def teardown(self) -> None:
        with contextlib.suppress(VmdeckError), connect(self.uri) as host:
            for dom in host.conn.domains():
                with contextlib.suppress(Exception):
                    if dom.is_active():
                        dom.poweroff()
        self.stop()
        holder = _pid(self.root / "virtlogd.pid")
        if holder is not None:
            os.kill(holder, signal.SIGTERM)
        pids = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "link", "del", self.veth_host], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

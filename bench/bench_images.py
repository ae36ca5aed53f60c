"""Debian image benchmarks, each against the raw tool doing the same work in the same run.

  (a) `vmdeck image build debian-12 --rebuild`             vs  `mmdebstrap` alone of the same packages
                                                              (same package cache): what the rest costs
  (b) `vmdeck create --image debian-12 --ssh-key --start`  vs  `virt-install --import --cloud-init` from
      until SSH answers on the loopback forward               the same base image, same user-data, same
                                                              2 vCPU / 1 GiB and the same hostfwd NIC
  (c) disk used by 10 VMs created from one base            vs  10 standalone copies of the base

Run:  .venv/bin/python bench/bench_images.py [--build] [--boot] [--density]   (as root; image built)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import libvirt

from vmdeck.host.connection import connect
from vmdeck.images.debian import PACKAGES, SOURCES, SUITE, build_image
from vmdeck.images.library import get_image
from vmdeck.storage.seed import cloud_init_config, render_user_data

VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]
PREFIX = "vmdeck-bench-img-"
BOOT_TIMEOUT = 1800


def sh(argv: list[str], timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{argv[:3]} failed: {done.stderr.strip()[-400:]}")
    return done


def load() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def bench_build() -> None:
    started = time.monotonic()
    sh([*VMDECK, "image", "build", "debian-12", "--rebuild"])
    vmdeck_s = time.monotonic() - started
    cache = Path("/var/lib/vmdeck/cache") / f"mmdebstrap-{SUITE}-amd64"
    with tempfile.TemporaryDirectory(prefix="bench-mmdebstrap-", dir="/var/tmp") as tmp:
        started = time.monotonic()
        sh(["mmdebstrap", "--mode=root", "--variant=apt", "--format=directory", f"--include={','.join(PACKAGES)}",
            "--skip=download/empty", "--skip=essential/unlink",
            '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
            f"--setup-hook=sync-in {cache} /var/cache/apt/archives/",
            SUITE, f"{tmp}/root", *SOURCES])
        raw_s = time.monotonic() - started
    size = Path(get_image("debian-12").path).stat().st_size
    print(f"(a) image build: vmdeck {vmdeck_s:.0f} s, mmdebstrap alone {raw_s:.0f} s, ratio {vmdeck_s / raw_s:.2f}x; "
          f"qcow2 {size / 2**20:.0f} MiB ({load()})")


def _wait_ssh(port: int, user: str, key: Path, known: Path) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    argv = ["ssh", "-p", str(port), "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={known}", "-o", "ConnectTimeout=10", f"{user}@127.0.0.1", "true"]
    while time.monotonic() < deadline:
        if subprocess.run(argv, capture_output=True, timeout=60).returncode == 0:
            return
        time.sleep(2)
    raise RuntimeError(f"ssh on port {port} did not answer within {BOOT_TIMEOUT} s")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _allocated(path: str | Path) -> int:
    return os.stat(path).st_blocks * 512


def _vmdeck_boot(name: str, key: Path, known: Path, out: dict[str, float]) -> None:
    started = time.monotonic()
    sh([*VMDECK, "create", name, "--image", "debian-12", "--ssh-key", f"{key}.pub", "--user", "bench", "--start"])
    port = json.loads(sh([*VMDECK, "show", name, "--json"]).stdout)["port_forwards"][0]["host_port"]
    _wait_ssh(port, "bench", key, known)
    out["vmdeck"] = time.monotonic() - started
    overlay = json.loads(sh([*VMDECK, "show", name, "--json"]).stdout)["disks"][0]["source"]
    out["overlay"] = _allocated(overlay)


def _virt_install_boot(name: str, disk: Path, user_data: Path, key: Path, known: Path, base: str,
                       out: dict[str, float]) -> None:
    port = _free_port()
    started = time.monotonic()
    sh(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", str(disk)])
    # --machine pc: on q35 virt-install puts its cloud-init CD on SATA, which Debian's cloud kernel lacks.
    sh(["virt-install", "--connect", "qemu:///system", "--name", name, "--memory", "1024", "--vcpus", "2",
        "--import", "--disk", f"path={disk},format=qcow2,bus=virtio", "--cloud-init", f"user-data={user_data}",
        "--network", "none", "--machine", "pc", "--virt-type", "qemu", "--graphics", "vnc", "--noautoconsole",
        "--osinfo", "debian11",  # the newest this osinfo-db knows
        f"--qemu-commandline=-netdev user,id=bench0,hostfwd=tcp:127.0.0.1:{port}-:22 "
        "-device virtio-net-pci,netdev=bench0,bus=pci.0,addr=0x10"])
    _wait_ssh(port, "bench", key, known)
    out["virt-install"] = time.monotonic() - started


def bench_boot(work: Path) -> None:
    """Both guests are created at the same moment and boot side by side: on a shared 2-core host the
    load changes minute by minute, and two guests started together see the same load."""
    import threading

    key = work / "id_ed25519"
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    known = work / "known_hosts"
    base = get_image("debian-12")
    name = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    vi_name = f"{PREFIX}vi-{uuid.uuid4().hex[:6]}"
    vi_disk = Path("/var/lib/vmdeck/pool") / f"{vi_name}.qcow2"
    user_data = work / "user-data"
    user_data.write_text(render_user_data(cloud_init_config(
        vi_name, hostname="bench", user="bench", ssh_keys=[("key", Path(f"{key}.pub").read_text())])))
    out: dict[str, float] = {}
    threads = [threading.Thread(target=_vmdeck_boot, args=(name, key, known, out)),
               threading.Thread(target=_virt_install_boot, args=(vi_name, vi_disk, user_data, key, known,
                                                                  base.path, out))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        subprocess.run([*VMDECK, "delete", "--force", name], capture_output=True)
        with connect() as host, contextlib.suppress(libvirt.libvirtError):
            dom = host.conn.lookupByName(vi_name)
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        vi_disk.unlink(missing_ok=True)
    if "vmdeck" not in out or "virt-install" not in out:
        raise RuntimeError(f"a boot failed: {out}")
    print(f"(b) create from image -> SSH answering, side by side: vmdeck {out['vmdeck']:.0f} s, virt-install "
          f"--import --cloud-init {out['virt-install']:.0f} s, ratio {out['vmdeck'] / out['virt-install']:.2f}x; "
          f"vmdeck's overlay after first boot {out['overlay'] / 2**20:.0f} MiB ({load()})")


def bench_density(work: Path) -> None:
    base = get_image("debian-12")
    names = [f"{PREFIX}d{i}-{uuid.uuid4().hex[:4]}" for i in range(10)]
    try:
        for name in names:
            sh([*VMDECK, "create", name, "--image", "debian-12", "--disk", "8"])
        used = 0
        for name in names:
            details = json.loads(sh([*VMDECK, "show", name, "--json"]).stdout)
            used += sum(_allocated(p) for p in details["owned_volumes"])
    finally:
        for name in names:
            subprocess.run([*VMDECK, "delete", "--force", name], capture_output=True)
    copy = work / "full-copy.qcow2"
    sh(["qemu-img", "convert", "-O", "qcow2", base.path, str(copy)])
    full = _allocated(copy) * 10
    compressed = _allocated(base.path) * 10
    print(f"(c) 10 VMs from one base, created: {used / 2**20:.1f} MiB of overlays + seeds (+ the "
          f"{_allocated(base.path) / 2**20:.0f} MiB base once) vs 10 standalone copies: `qemu-img convert -O qcow2` "
          f"{full / 2**20:.0f} MiB ({full / max(used, 1):.0f}x), or 10 copies of the compressed base "
          f"{compressed / 2**20:.0f} MiB ({compressed / max(used, 1):.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", action="store_true")
    parser.add_argument("--boot", action="store_true")
    parser.add_argument("--density", action="store_true")
    args = parser.parse_args()
    everything = not (args.build or args.boot or args.density)
    build_image("debian-12")
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        if args.build or everything:
            bench_build()
        if args.density or everything:
            bench_density(Path(tmp))
        if args.boot or everything:
            bench_boot(Path(tmp))


if __name__ == "__main__":
    main()

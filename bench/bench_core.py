"""Core benchmarks, each a ratio against the raw tool doing the same work in the same run.

  (a) `vmdeck create --start` of the tiny VM          vs  `virsh vol-create-as` + `define` + `start`
  (b) start -> guest ready marker through vmdeck       vs  a bare qemu-system-x86_64 command line
  (c) `vmdeck list --json` with 100 defined VMs        vs  `virsh list --all`; plus the in-process call

Run:  .venv/bin/python bench/bench_core.py [--rounds N]   (as root, libvirtd running, tiny image built)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import libvirt

from vmdeck.host.connection import connect
from vmdeck.images.tiny import find_tiny
from vmdeck.vm.inventory import list_vms

VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
PREFIX = "vmdeck-bench-"


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"{argv} failed: {done.stderr.strip()}")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def summary(samples: list[float]) -> str:
    med = statistics.median(samples)
    return f"median {med * 1000:.0f} ms (min {min(samples) * 1000:.0f}, max {max(samples) * 1000:.0f}, n={len(samples)})"


def cleanup() -> None:
    with connect() as host:
        for dom in host.conn.raw.listAllDomains(0):
            if dom.name().startswith(PREFIX):
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                subprocess.run([*VMDECK, "delete", "--force", dom.name()], capture_output=True)
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefine()
        pool = host.conn.raw.storagePoolLookupByName("vmdeck")
        pool.refresh(0)
        for vol in pool.listAllVolumes(0):
            if vol.name().startswith(PREFIX):
                vol.delete(0)


def _create_start_in_process(name: str) -> float:
    """The same work through vmdeck's core, without the command's Python start-up."""
    from vmdeck.spec.templates import resolve
    from vmdeck.vm import lifecycle
    from vmdeck.vm.create import create_vm

    with connect() as host:
        started = time.perf_counter()
        create_vm(host, resolve("tiny", name))
        lifecycle.start(host, name)
        return time.perf_counter() - started


def bench_create_start(rounds: int) -> tuple[list[float], list[float], list[float]]:
    vmdeck_times, virsh_times, core_times = [], [], []
    for index in range(rounds):
        core_times.append(_create_start_in_process(f"{PREFIX}c{index}"))
        name = f"{PREFIX}v{index}"
        # One command, as a user would type it: `vmdeck create NAME -t tiny --start`.
        vmdeck_times.append(timed(lambda n=name: run([*VMDECK, "create", n, "-t", "tiny", "--start"])))
        # The same XML, under another name and with its own new volume, through virsh.
        with connect() as host:
            xml = host.lookup(name).raw.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        raw = f"{PREFIX}r{index}"
        xml = xml.replace(name, raw)  # name, volume and serial log path
        xml = "\n".join(line for line in xml.splitlines() if "<uuid>" not in line and "<mac " not in line)
        xml_file = Path(tempfile.mkstemp(suffix=".xml")[1])
        xml_file.write_text(xml)
        virsh_times.append(timed(lambda: (
            run([*VIRSH, "vol-create-as", "vmdeck", f"{raw}-vda.qcow2", "1G", "--format", "qcow2"]),
            run([*VIRSH, "define", str(xml_file)]),
            run([*VIRSH, "start", raw]),
        )))
        xml_file.unlink()
        cleanup()
    return vmdeck_times, virsh_times, core_times


def _bare_qemu_ready(kernel: Path, initrd: Path, cmdline: str, marker: str, disk: Path) -> float:
    """The same guest on a bare QEMU command line, with the devices the tiny template gives it."""
    argv = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m", "256", "-smp", "1", "-nodefaults",
            "-vga", "std", "-display", "none", "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
            "-serial", "stdio",
            "-drive", f"file={disk},if=virtio,format=qcow2,cache=none",
            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-scsi-pci", "-device", "virtio-serial-pci",
            "-chardev", "null,id=qga", "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
            "-device", "virtio-tablet-pci", "-device", "virtio-balloon-pci", "-device", "virtio-rng-pci"]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if marker.encode() in line:
                return time.perf_counter() - started
        raise RuntimeError("bare QEMU exited before the ready marker")
    finally:
        proc.kill()
        proc.wait()


def _virsh_ready(name: str, log: Path, marker: str) -> float:
    """libvirt alone: `virsh start`, then watch the serial log for the marker (what vmdeck does, minus vmdeck)."""
    started = time.perf_counter()
    run([*VIRSH, "start", name])
    while marker not in log.read_text(errors="replace"):
        time.sleep(0.05)
    return time.perf_counter() - started


def bench_ready(rounds: int) -> tuple[list[float], list[float], list[float]]:
    image = find_tiny("x86_64")
    assert image is not None, "build the tiny image first: vmdeck image build tiny"
    name = f"{PREFIX}ready"
    run([*VMDECK, "create", name, "-t", "tiny"])
    vmdeck_times, bare_times, virsh_times = [], [], []
    log = Path(f"/var/log/libvirt/qemu/{name}-serial.log")
    disk = Path(tempfile.mkdtemp()) / "bare.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1G"])
    try:
        for _ in range(rounds):
            vmdeck_times.append(timed(lambda: run([*VMDECK, "start", "--wait", name])))
            run([*VMDECK, "poweroff", name])
            virsh_times.append(_virsh_ready(name, log, image.ready_marker))
            run([*VIRSH, "destroy", name])
            bare_times.append(_bare_qemu_ready(image.kernel, image.initrd, image.cmdline, image.ready_marker, disk))
    finally:
        cleanup()
        disk.unlink()
    return vmdeck_times, bare_times, virsh_times


def bench_list(rounds: int, count: int = 100) -> tuple[list[float], list[float], list[float]]:
    with connect() as host:
        for index in range(count):
            host.conn.raw.defineXML(
                f"<domain type='qemu'><name>{PREFIX}l{index:03}</name><memory unit='MiB'>64</memory>"
                "<vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
            )
        try:
            cli_times = [timed(lambda: run([*VMDECK, "list", "--json"])) for _ in range(rounds)]
            virsh_times = [timed(lambda: run([*VIRSH, "list", "--all"])) for _ in range(rounds)]
            calls = [timed(lambda: list_vms(host)) for _ in range(rounds)]
        finally:
            cleanup()
    return cli_times, virsh_times, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cleanup()
    print(f"# vmdeck core benchmark, {args.rounds} rounds, {time.strftime('%Y-%m-%d %H:%M')}\n")
    ours, raw, core = bench_create_start(args.rounds)
    print(f"(a) vmdeck create --start: {summary(ours)}\n    virsh vol-create-as+define+start: {summary(raw)}"
          f"\n    vmdeck core in process (create_vm + start): {summary(core)}"
          f"\n    ratio command {statistics.median(ours) / statistics.median(raw):.2f}x (target <= 1.2x), "
          f"core {statistics.median(core) / statistics.median(raw):.2f}x\n")
    ours, raw, virsh = bench_ready(args.rounds)
    print(f"(b) vmdeck start --wait (to ready marker): {summary(ours)}\n    bare qemu-system-x86_64: {summary(raw)}"
          f"\n    virsh start + watching the serial log: {summary(virsh)}"
          f"\n    ratio vs bare QEMU {statistics.median(ours) / statistics.median(raw):.2f}x (target <= 1.1x), "
          f"vs virsh {statistics.median(ours) / statistics.median(virsh):.2f}x\n")
    cli, virsh, calls = bench_list(args.rounds * 2)
    print(f"(c) 100 defined VMs: list_vms() in process: {summary(calls)} (bulk calls: getAllDomainStats + the transient list)"
          f"\n    vmdeck list --json (whole command, incl. Python start-up): {summary(cli)}"
          f"\n    virsh list --all: {summary(virsh)}\n    ratio (command vs virsh) "
          f"{statistics.median(cli) / statistics.median(virsh):.2f}x\n")


if __name__ == "__main__":
    main()

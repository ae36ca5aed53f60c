"""Core benchmarks, each a ratio against the raw tool doing the same work in the same run.

  (a) `vmdeck create --start` of the tiny VM          vs  `virsh vol-create-as` + `define` + `start`
  (b) start -> guest ready marker through vmdeck       vs  a bare qemu-system-x86_64 command line
  (c) `vmdeck list --json` with 100 defined VMs        vs  `virsh list --all`; plus the in-process call

Run:  .venv/bin/python bench/bench_core.py [--rounds N] [--write]   (as root, libvirtd running, tiny image built)
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
from perfdoc import command_line, host_load, spread, stamp, write_section

from vmdeck.host.connection import connect
from vmdeck.images.tiny import find_tiny
from vmdeck.vm.inventory import list_vms

VMDECK = [str(Path(sys.executable).parent / "vmdeck")]  # the console script a user runs
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


TITLE = "Core: create, start, ready, list"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="put the section into docs/PERFORMANCE.md")
    args = parser.parse_args()
    load = host_load()
    cleanup()
    a_ours, a_raw, a_core = bench_create_start(args.rounds)
    b_ours, b_bare, b_virsh = bench_ready(args.rounds)
    c_cli, c_virsh, c_calls = bench_list(args.rounds * 2)

    def ratio(x: list[float], y: list[float]) -> str:
        return f"{statistics.median(x) / statistics.median(y):.2f}x"

    def ms(values: list[float]) -> str:
        return spread([v * 1000 for v in values])

    body = "\n".join([
        f"Command: `{command_line()}` ({stamp()}; {load} at the start).", "",
        f"{args.rounds} rounds ((c): {args.rounds * 2}); medians (min-max).", "",
        "| measure | vmdeck | raw baseline in the same run | ratio | target |",
        "|---|---|---|---|---|",
        f"| (a) `vmdeck create NAME -t tiny --start` (one command) | {ms(a_ours)} | `virsh vol-create-as` + "
        f"`define` + `start` of the same XML: {ms(a_raw)} | **{ratio(a_ours, a_raw)}** | <= 1.2x |",
        f"| (a) the same in-process (`create_vm` + `start`) | {ms(a_core)} | same | {ratio(a_core, a_raw)} | |",
        f"| (b) `vmdeck start --wait` to the ready marker | {ms(b_ours)} | bare `qemu-system-x86_64`, same kernel "
        f"and devices: {ms(b_bare)} | **{ratio(b_ours, b_bare)}** | <= 1.1x |",
        f"| (b) against libvirt alone (`virsh start` + watching the log) | {ms(b_ours)} | {ms(b_virsh)} | "
        f"{ratio(b_ours, b_virsh)} | |",
        f"| (c) `list_vms()` in-process, 100 defined VMs | {ms(c_calls)} | | | < 100 ms |",
        f"| (c) `vmdeck list --json` command | {ms(c_cli)} | `virsh list --all`: {ms(c_virsh)} | "
        f"{ratio(c_cli, c_virsh)} | |",
    ])
    print(f"## {TITLE}\n\n{body}")
    if args.write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()

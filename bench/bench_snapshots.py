"""Snapshot and clone benchmarks, each a ratio against the raw tool doing the same work in the same run.

  (a) snapshot of a running VM: `vmdeck snapshot create`   vs  `virsh snapshot-create-as --disk-only`
  (b) revert to a disk-only snapshot: `vmdeck snapshot revert`  vs  what a user does by hand on libvirt 9.0
      (virsh snapshot-revert refuses external snapshots): `qemu-img create -b FROZEN` + `virsh define`
  (c) clone create + start: `vmdeck clone --linked --start`  vs  `vmdeck clone --start` (full copy)
      and the full copy against `virt-clone --auto-clone` + `virsh start`

The source disk (1 GiB) holds 900 MiB of data (written with qemu-io) so that a full copy has something to copy.
Run:  .venv/bin/python bench/bench_snapshots.py [--rounds N]   (as root, libvirtd running, tiny image built)
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

from vmdeck.domxml.snapshots import set_disk_sources
from vmdeck.host.connection import connect
from vmdeck.paths import pool_dir
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.storage.pool import ensure_pool
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm
from vmdeck.vm.snapshot_ops import config_xml, list_snapshots

VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
PREFIX = "vmdeck-bench-snap-"


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"{argv} failed: {done.stderr.strip()}")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def med(samples: list[float]) -> float:
    return statistics.median(samples)


def summary(samples: list[float]) -> str:
    return f"{med(samples) * 1000:.0f} ms ({min(samples) * 1000:.0f}-{max(samples) * 1000:.0f}, n={len(samples)})"


def cleanup() -> None:
    with connect() as host:
        for dom in host.conn.listAllDomains(0):
            if dom.name().startswith(PREFIX):
                with contextlib.suppress(Exception):
                    lifecycle.delete(host, dom.name(), force=True)
        for path in pool_dir().iterdir():  # virsh's and virt-clone's files are not vmdeck's: removed by name
            if path.name.startswith(PREFIX):
                path.unlink()
        with contextlib.suppress(Exception):
            ensure_pool(host).refresh()


def make_source(name: str, start: bool) -> None:
    with connect() as host:
        create_vm(host, resolve("tiny", name, Overrides(memory_mib=128)))
        disk = pool_dir() / f"{name}-vda.qcow2"
        run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 900M", str(disk)])
        if start:
            lifecycle.start(host, name, wait=True, timeout=300)


def bench_snapshot(rounds: int) -> tuple[list[float], list[float], list[float]]:
    from vmdeck.vm.snapshot_ops import create_snapshot

    name = f"{PREFIX}run"
    make_source(name, start=True)
    ours, core, theirs = [], [], []
    host = connect()
    for i in range(rounds):
        ours.append(timed(lambda i=i: run([*VMDECK, "snapshot", "create", name, f"s{i}"])))
        core.append(timed(lambda i=i: create_snapshot(host, name, f"c{i}")))
        overlay = pool_dir() / f"{name}-virsh-{i}.qcow2"
        theirs.append(timed(lambda i=i, overlay=overlay: run(
            [*VIRSH, "snapshot-create-as", name, f"v{i}", "--disk-only", "--atomic", "--no-metadata",
             "--diskspec", f"vda,file={overlay}", "--diskspec", "sda,snapshot=no"])))
    host.close()
    return ours, core, theirs


def bench_revert(rounds: int) -> tuple[list[float], list[float], list[float]]:
    from vmdeck.vm.snapshot_ops import revert_snapshot

    name = f"{PREFIX}run"
    with connect() as host:
        lifecycle.poweroff(host, name)
        frozen = list_snapshots(host, name).get("s0").frozen("vda") or ""
        ours, core, theirs = [], [], []
        for i in range(rounds):
            ours.append(timed(lambda: run([*VMDECK, "snapshot", "revert", name, "s0"])))
            core.append(timed(lambda: revert_snapshot(host, name, "s0")))
            overlay = pool_dir() / f"{name}-byhand-{i}.qcow2"
            with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as xml_file:
                xml_file.write(set_disk_sources(config_xml(host.lookup(name)), {"vda": str(overlay)}))

            def by_hand(overlay: Path = overlay, xml: str = xml_file.name) -> None:
                run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", frozen, "-F", "qcow2", str(overlay)])
                run([*VIRSH, "define", xml])

            theirs.append(timed(by_hand))
            Path(xml_file.name).unlink()
    return ours, core, theirs


def bench_clones(rounds: int) -> tuple[list[float], list[float], list[float]]:
    src = f"{PREFIX}src"
    make_source(src, start=False)
    linked, full, virt_clone = [], [], []
    for i in range(rounds):
        linked.append(timed(lambda i=i: run([*VMDECK, "clone", src, f"{src}-l{i}", "--linked", "--start"])))
        full.append(timed(lambda i=i: run([*VMDECK, "clone", src, f"{src}-f{i}", "--start"])))

        def by_virt_clone(i: int = i) -> None:
            run(["virt-clone", "--connect", "qemu:///system", "--original", src, "--name", f"{src}-v{i}",
                 "--file", str(pool_dir() / f"{src}-v{i}-vda.qcow2")])
            run([*VIRSH, "start", f"{src}-v{i}"])

        virt_clone.append(timed(by_virt_clone))
        for kind in ("l", "f", "v"):
            run([*VMDECK, "delete", "--force", f"{src}-{kind}{i}"])
    return linked, full, virt_clone


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    cleanup()
    try:
        ours, core, virsh = bench_snapshot(rounds)
        print(f"(a) snapshot of a running VM: vmdeck {summary(ours)}; in-process {summary(core)}; "
              f"virsh snapshot-create-as --disk-only {summary(virsh)}; ratio {med(ours) / med(virsh):.2f}x, "
              f"in-process {med(core) / med(virsh):.2f}x")
        ours, core, by_hand = bench_revert(rounds)
        print(f"(b) revert (shut off): vmdeck {summary(ours)}; in-process {summary(core)}; qemu-img create + "
              f"virsh define {summary(by_hand)}; ratio {med(ours) / med(by_hand):.2f}x, "
              f"in-process {med(core) / med(by_hand):.2f}x")
        linked, full, virt_clone = bench_clones(rounds)
        print(f"(c) clone + start: linked {summary(linked)}; full {summary(full)}; linked/full "
              f"{med(linked) / med(full):.2f}x; virt-clone + virsh start {summary(virt_clone)}; "
              f"full/virt-clone {med(full) / med(virt_clone):.2f}x")
    finally:
        cleanup()


if __name__ == "__main__":
    main()

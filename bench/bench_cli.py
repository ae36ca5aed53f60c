"""CLI start-up: the `vmdeck` command as a user types it, against virsh doing the same work, in one run.

    .venv/bin/python bench/bench_cli.py [--rounds 5] [--runs 10] [--vms 50] [--write]

  (1) `vmdeck --version`                              target <= 80 ms (bare `python -c pass` for reference)
  (2) `vmdeck list` with --vms defined VMs            vs `virsh list --all`; target <= 4x
  (3) `vmdeck create NAME -t tiny` + `vmdeck start NAME`
                                                      vs `virsh vol-create-as` + `virsh define` + `virsh start`
                                                         of the same XML; target <= 1.3x
(2) and (3) are measured twice: with no `vmdeck serve` running (each command does the work in its own
process), and with one running, to which the command hands the request over its local socket
(vmdeck.local_socket), as virsh hands its requests to libvirtd. Both use a database of their own.
(1) and (2) are timed by hyperfine (--runs per command per round, no shell), (3) by this script; the
commands alternate within each round and the order flips every round (A B, B A, ...), so a busy
neighbour slows both sides alike. Medians over rounds with min-max. Everything it makes is named
vmdeck-dev-bench-cli-* and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import libvirt
from perfdoc import command_line, host_load, spread, stamp, write_section

from vmdeck.host.connection import connect

PREFIX = "vmdeck-dev-bench-cli-"
VMDECK = str(Path(sys.executable).parent / "vmdeck")  # the console script a user runs
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
TITLE = "CLI start-up"


def hyperfine(commands: list[str], runs: int) -> list[float]:
    """Median seconds of each command (hyperfine, no shell, one warm-up run)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["hyperfine", "-N", "--style", "none", "--warmup", "1", "--runs", str(runs),
                        "--export-json", out.name, *commands], check=True, capture_output=True, timeout=600)
        results = json.loads(Path(out.name).read_text())["results"]
    return [r["median"] for r in results]


def interleaved(commands: list[str], rounds: int, runs: int) -> list[list[float]]:
    """Per command, the median of each round; the command order flips every round."""
    samples: list[list[float]] = [[] for _ in commands]
    for index in range(rounds):
        order = list(range(len(commands)))
        if index % 2:
            order.reverse()
        for position, value in zip(order, hyperfine([commands[i] for i in order], runs), strict=True):
            samples[position].append(value * 1000)
    return samples


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"{argv} failed: {done.stderr.strip()}")


def cleanup() -> None:
    with connect("qemu:///system") as host:
        for dom in host.conn.raw.listAllDomains(0):
            if dom.name().startswith(PREFIX):
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        with contextlib.suppress(libvirt.libvirtError):
            pool = host.conn.raw.storagePoolLookupByName("vmdeck")
            pool.refresh(0)
            for vol in pool.listAllVolumes(0):
                if vol.name().startswith(PREFIX):
                    vol.delete(0)


def create_start_round(index: int, vmdeck_first: bool) -> tuple[float, float]:
    """One vmdeck create+start and one virsh vol-create-as+define+start of the same XML, in the given order."""
    name, raw = f"{PREFIX}v{index}", f"{PREFIX}r{index}"

    def vmdeck() -> float:
        started = time.perf_counter()
        run([VMDECK, "create", name, "-t", "tiny"])
        run([VMDECK, "start", name])
        return time.perf_counter() - started

    def virsh(xml_file: Path) -> float:
        started = time.perf_counter()
        run([*VIRSH, "vol-create-as", "vmdeck", f"{raw}-vda.qcow2", "1G", "--format", "qcow2"])
        run([*VIRSH, "define", str(xml_file)])
        run([*VIRSH, "start", raw])
        return time.perf_counter() - started

    # The virsh side needs vmdeck's XML: a throw-away VM made first gives it when virsh goes first.
    template = f"{PREFIX}x{index}"
    run([VMDECK, "create", template, "-t", "tiny"])
    with connect("qemu:///system") as host:
        xml = host.lookup(template).raw.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    xml = xml.replace(template, raw)  # name, volume and serial log path
    xml = "\n".join(line for line in xml.splitlines() if "<uuid>" not in line and "<mac " not in line)
    xml_file = Path(tempfile.mkstemp(suffix=".xml")[1])
    xml_file.write_text(xml)
    try:
        if vmdeck_first:
            ours = vmdeck()
            theirs = virsh(xml_file)
        else:
            theirs = virsh(xml_file)
            ours = vmdeck()
    finally:
        xml_file.unlink()
        cleanup()
    return ours * 1000, theirs * 1000


class Serve:
    """A `vmdeck serve` on the benchmark's own database, while the served half runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Serve:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with open(self.folder / "serve.log", "ab") as log:
            self.process = subprocess.Popen([VMDECK, "serve", "--port", str(port)], stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5):
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"vmdeck serve did not come up: {(self.folder / 'serve.log').read_text()}")

    def __exit__(self, *_exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(30)


def measure(args: argparse.Namespace) -> tuple[list[float], list[float], list[float], list[float], int]:
    """(list, virsh list, create+start, virsh create+start) samples, and how many VMs `list` saw."""
    with connect("qemu:///system") as host:
        for index in range(args.vms):
            host.conn.raw.defineXML(f"<domain type='qemu'><name>{PREFIX}l{index:03}</name><memory unit='MiB'>64"
                                    "</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os>"
                                    "</domain>")
        total = len(host.conn.raw.listAllDomains(0))
    listing, virsh_list = interleaved([f"{VMDECK} list", " ".join([*VIRSH, "list", "--all"])], args.rounds, args.runs)
    cleanup()
    ours, theirs = [], []
    for index in range(args.rounds):
        mine, raw = create_start_round(index, vmdeck_first=index % 2 == 0)
        ours.append(mine)
        theirs.append(raw)
    return listing, virsh_list, ours, theirs, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10, help="hyperfine runs per command per round")
    parser.add_argument("--vms", type=int, default=50, help="defined VMs while `list` is timed")
    parser.add_argument("--write", action="store_true", help="put the section into docs/PERFORMANCE.md")
    args = parser.parse_args()
    load = host_load()
    folder = Path(tempfile.mkdtemp(prefix="vmdeck-bench-cli-"))
    # The commands and the server share this database; the hand-off socket is found beside it.
    os.environ["VMDECK_DB"] = str(folder / "web" / "vmdeck.sqlite")
    os.environ.pop("VMDECK_URI", None)
    cleanup()
    try:
        version, python = interleaved([f"{VMDECK} --version", f"{sys.executable} -c pass"], args.rounds, args.runs)
        alone = measure(args)
        cleanup()
        with Serve(folder):
            served = measure(args)
    finally:
        cleanup()
        shutil.rmtree(folder, ignore_errors=True)

    def ratio(a: list[float], b: list[float]) -> float:
        return statistics.median(a) / statistics.median(b)

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    def rows(how: str, samples: tuple[list[float], list[float], list[float], list[float], int]) -> list[str]:
        listing, virsh_list, ours, theirs, _total = samples
        per_round = [a / b for a, b in zip(ours, theirs, strict=True)]
        return [
            f"| (2) `vmdeck list`, {how} | {spread(listing)} | `virsh list --all`: {spread(virsh_list)} | "
            f"**{ratio(listing, virsh_list):.2f}x** | <= 4x: {verdict(ratio(listing, virsh_list) <= 4)} |",
            f"| (3) `vmdeck create -t tiny` + `vmdeck start`, {how} | {spread(ours)} | `virsh vol-create-as` + "
            f"`define` + `start`: {spread(theirs)} | **{ratio(ours, theirs):.2f}x** (per round "
            f"{min(per_round):.2f}-{max(per_round):.2f}x) | <= 1.3x: {verdict(ratio(ours, theirs) <= 1.3)} |"]

    body = "\n".join([
        f"Command: `{command_line()}` ({stamp()}; {load} at the start).", "",
        f"{args.rounds} interleaved rounds (the order flips every round); (1) and (2) by hyperfine, {args.runs} runs "
        f"per command per round; medians over rounds (min-max). `vmdeck` is the installed console script; "
        f"{alone[4]} VMs were defined while `list` ran. (2) and (3) ran twice: with no `vmdeck serve` running "
        "(each command does the work in its own process), then with one running on the same database, to "
        "which the commands hand their request over its local socket (as virsh hands its requests to libvirtd).",
        "",
        "| measure | vmdeck | raw tool in the same rounds | ratio | target |",
        "|---|---|---|---|---|",
        f"| (1) `vmdeck --version` | {spread(version)} | `python -c pass`: {spread(python)} | "
        f"{ratio(version, python):.2f}x | <= 80 ms: {verdict(statistics.median(version) <= 80)} |",
        *rows("no server", alone),
        *rows("`vmdeck serve` running", served),
    ])
    print(f"## {TITLE}\n\n{body}")
    if args.write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()

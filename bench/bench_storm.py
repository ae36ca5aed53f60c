"""Boot storm: start N VMs at once until every guest is ready, vmdeck against virsh, in one run.

    .venv/bin/python bench/bench_storm.py [--vms 20] [--rounds 2] [--memory 96] [--write]

The N VMs are tiny guests without disks (1 vCPU, --memory MiB, TCG translation cache 16 MiB), named
vmdeck-dev-bench-storm-*. Each round times, in alternating order:
  vmdeck: `vmdeck start --wait A B C ...` (one command; it returns when every guest printed its ready marker)
  virsh:  N `virsh start NAME` processes at once, then watching the N serial logs for the same marker and,
          once it is there, `virsh qemu-agent-command NAME guest-ping` until the agent answers (what
          vmdeck's --wait means for a VM with a guest agent, as the tiny guest has)
Between the two every VM is powered off and its serial log emptied. Target: vmdeck <= 1.1x virsh.
Everything is deleted at the end (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

from perfdoc import command_line, host_load, spread, stamp, tolerate_starved_vcpus, write_section

from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import NotFound, VmdeckError
from vmdeck.host.connection import Host, connect
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm
from vmdeck.vm.lifecycle import READY_MARKER

PREFIX = "vmdeck-dev-bench-storm-"
VMDECK = str(Path(sys.executable).parent / "vmdeck")
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
TITLE = "Boot storm"


def make_vms(host: Host, count: int, memory_mib: int) -> dict[str, Path]:
    """name -> serial log of `count` diskless tiny VMs (created once, reused by every round)."""
    logs = {}
    for index in range(count):
        name = f"{PREFIX}{index:02d}"
        if not host.exists(name):
            spec = resolve("tiny", name, Overrides(vcpus=1, memory_mib=memory_mib))
            spec = spec.model_copy(update={"disks": (), "cdroms": (), "tcg_tb_cache_mib": 16})
            create_vm(host, spec)
            tolerate_starved_vcpus(host, name)
        view = parse_domain(host.lookup(name).xml())
        assert view.serial_log, f"{name} has no serial log"
        logs[name] = Path(view.serial_log)
    return logs


def power_off_all(host: Host, logs: dict[str, Path]) -> None:
    for name, log in logs.items():
        dom = host.lookup(name)
        with contextlib.suppress(VmdeckError):
            if dom.is_active():
                dom.poweroff()
        with contextlib.suppress(OSError):
            log.write_bytes(b"")  # the next round must not see this round's marker


def vmdeck_storm(names: list[str], timeout: float) -> float:
    started = time.perf_counter()
    done = subprocess.run([VMDECK, "start", "--wait", "--timeout", str(timeout), *names], capture_output=True,
                          text=True, timeout=timeout + 60)
    if done.returncode:
        raise RuntimeError(f"vmdeck start failed: {done.stderr.strip()}")
    return time.perf_counter() - started


def virsh_storm(logs: dict[str, Path], timeout: float) -> float:
    started = time.perf_counter()
    starts = [subprocess.Popen([*VIRSH, "start", name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
              for name in logs]
    for proc in starts:
        if proc.wait(timeout) != 0:
            raise RuntimeError(f"virsh start failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    marker = READY_MARKER.encode()
    pending = dict(logs)
    while pending:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"not ready within {timeout} s: {sorted(pending)}")
        for name, log in list(pending.items()):
            with contextlib.suppress(OSError):
                # Ready as vmdeck means it: the marker, then the guest agent answering.
                if marker in log.read_bytes() and subprocess.run(
                        [*VIRSH, "qemu-agent-command", name, '{"execute":"guest-ping"}', "--timeout", "1"],
                        capture_output=True).returncode == 0:
                    del pending[name]
        time.sleep(0.1)  # the same polling period as vmdeck's
    return time.perf_counter() - started


def cleanup(host: Host) -> None:
    for dom in host.conn.raw.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            with contextlib.suppress(NotFound):
                lifecycle.delete(host, dom.name(), force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory", type=int, default=96, help="MiB per VM")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for one storm")
    parser.add_argument("--write", action="store_true", help="put the section into docs/PERFORMANCE.md")
    args = parser.parse_args()
    load = host_load()
    host = connect("qemu:///system")
    ours: list[float] = []
    theirs: list[float] = []
    try:
        logs = make_vms(host, args.vms, args.memory)
        names = sorted(logs)
        for index in range(args.rounds):
            for side in (("vmdeck", "virsh") if index % 2 == 0 else ("virsh", "vmdeck")):
                power_off_all(host, logs)
                if side == "vmdeck":
                    ours.append(vmdeck_storm(names, args.timeout) * 1000)
                else:
                    theirs.append(virsh_storm(logs, args.timeout) * 1000)
                print(f"round {index + 1}: {side} {(ours if side == 'vmdeck' else theirs)[-1]:.0f} ms", flush=True)
    finally:
        cleanup(host)
    ratio = statistics.median(ours) / statistics.median(theirs)
    per_round = [a / b for a, b in zip(ours, theirs, strict=True)]
    body = "\n".join([
        f"Command: `{command_line()}` ({stamp()}; {load} at the start).", "",
        f"{args.vms} diskless tiny VMs (1 vCPU, {args.memory} MiB, TCG, translation cache 16 MiB) started at once "
        f"until every guest is ready (its ready marker on the serial console, then its guest agent "
        f"answering); kernel command line with `no_timer_check` (see bench/perfdoc.py); {args.rounds} rounds, the order flips "
        "every round, every VM powered off and its log emptied in between. Medians (min-max).", "",
        "| start N VMs to ready | vmdeck `start --wait A B ...` | N parallel `virsh start` + watching the logs and agents | "
        "ratio | target |",
        "|---|---|---|---|---|",
        f"| N = {args.vms} | {spread(ours)} | {spread(theirs)} | **{ratio:.2f}x** (per round "
        f"{min(per_round):.2f}-{max(per_round):.2f}x) | <= 1.1x: **{'met' if ratio <= 1.1 else 'missed'}** |",
    ])
    print(f"## {TITLE}\n\n{body}")
    if args.write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()

"""Port forward throughput: a TCP transfer from the guest through a vmdeck port forward against the same
transfer straight to the guest's address, in one run, in the same network namespace.

    .venv/bin/python bench/bench_forward.py [--rounds 7] [--mib 32] [--write]     (as root)

A libvirtd runs in network + mount namespaces of this run's own (tests/integration/nshosts.py), with a
vmdeck NAT network and a tiny guest on it; vmdeck runs in those namespaces too (as on a real host, beside
libvirtd) and forwards the namespace's 127.0.0.1:15001 to the guest's port 5001. In the guest, busybox
`nc -l -p 5001 < /dev/zero` (restarted after each connection) sends zeros; a client in the namespace
reads --mib MiB, either from 127.0.0.1:15001 (the forward: DNAT in nftables' output hook, masquerade on
the bridge) or from GUEST_IP:5001 (straight across the bridge), and times it. The two alternate within
each round and the order flips every round (A B, B A, ...), so a busy neighbour slows both alike.
Medians over rounds with min-max. Target: the forward costs under 10%. All traffic stays in the namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from nshosts import NamespaceHost, start_hosts, stop_hosts  # noqa: E402
from perfdoc import command_line, host_load, spread, stamp, write_section  # noqa: E402

from vmdeck.host.connection import connect  # noqa: E402
from vmdeck.spec.templates import Overrides, resolve  # noqa: E402
from vmdeck.vm import lifecycle  # noqa: E402
from vmdeck.vm.agent import guest_exec  # noqa: E402
from vmdeck.vm.create import create_vm  # noqa: E402

PREFIX = "vmdeck-dev-bench-forward-"
_SRC = str(Path(__file__).resolve().parent.parent / "src")
# The client: read N bytes from HOST:PORT (retrying while the guest's nc restarts), print the seconds.
_CLIENT = """
import socket, sys, time
host, port, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + 30
while True:
    try:
        s = socket.create_connection((host, port), timeout=10)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
buf = bytearray(1 << 20)
got, start = 0, time.perf_counter()
while got < want:
    n = s.recv_into(buf)
    if not n:
        raise SystemExit(f"closed after {got} bytes")
    got += n
print(time.perf_counter() - start)
s.close()
"""


def _enter(ns: NamespaceHost) -> list[str]:
    pid = (ns.root / "virtlogd.pid").read_text().strip()
    return ["nsenter", f"--net=/proc/{pid}/ns/net", f"--mount=/proc/{pid}/ns/mnt", "--"]


def _vmdeck(ns: NamespaceHost, db: str, *args: str) -> str:
    env = {**os.environ, "VMDECK_DB": db, "VMDECK_URI": "qemu:///system",
           "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([*_enter(ns), sys.executable, "-m", "vmdeck.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"vmdeck {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _transfer(ns: NamespaceHost, host: str, port: int, size: int) -> float:
    done = subprocess.run(["ip", "netns", "exec", ns.netns, sys.executable, "-c", _CLIENT, host, str(port),
                           str(size)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"transfer from {host}:{port}: {done.stderr.strip()}")
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--mib", type=int, default=32)
    parser.add_argument("--write", action="store_true", help="Write the table into docs/PERFORMANCE.md.")
    args = parser.parse_args()
    size = args.mib * 2**20
    with connect() as local:
        ns = start_hosts(local, 1)[0]
    db = str(Path(tempfile.mkdtemp(prefix=PREFIX)) / "vmdeck.sqlite")
    net, vm = f"bf-{os.getpid()}", f"{PREFIX}{os.getpid()}"
    try:
        _vmdeck(ns, db, "network", "create", net, "--mode", "nat", "--subnet", f"10.234.{os.getpid() % 200}.0/24")
        with ns.connect() as on:
            create_vm(on, resolve("tiny", vm, Overrides(memory_mib=256, vcpus=1, network=net)))
            lifecycle.start(on, vm, wait=True, timeout=600)
            deadline = time.monotonic() + 180
            while b"inet " not in guest_exec(on.lookup(vm), ["ip", "-o", "-4", "addr", "show", "eth0"]).stdout:
                if time.monotonic() > deadline:
                    raise SystemExit("the guest got no address")
                time.sleep(1)
            # Detached from the agent's command: the loop serves every transfer of the run.
            guest_exec(on.lookup(vm), ["/bin/sh", "-c", "(while true; do nc -l -p 5001 < /dev/zero; done) "
                                                        ">/dev/null 2>&1 &"])
        made = json.loads(_vmdeck(ns, db, "forward", "add", vm, "15001:5001", "--json"))
        paths = {"forward": ("127.0.0.1", 15001), "direct": (made["guest_ip"], 5001)}
        _transfer(ns, *paths["direct"], size)  # warm-up: ARP, the guest's page cache, conntrack
        _transfer(ns, *paths["forward"], size)
        times: dict[str, list[float]] = {"forward": [], "direct": []}
        for r in range(args.rounds):
            for kind in (("direct", "forward") if r % 2 == 0 else ("forward", "direct")):
                times[kind].append(_transfer(ns, *paths[kind], size))
        rates = {k: [args.mib / s for s in v] for k, v in times.items()}
        cost = 1 - statistics.median(rates["forward"]) / statistics.median(rates["direct"])
        verdict = f"costs {cost * 100:.1f}%" if cost > 0 else "costs nothing measurable (faster by noise)"
        body = (f"Measured {stamp()}, {host_load()}. Command: `{command_line()}`\n\n"
                f"| {args.mib} MiB from the guest (TCP), {args.rounds} rounds | throughput, median (min-max) |\n"
                "|---|---|\n"
                f"| straight to the guest (GUEST_IP:5001) | {spread(rates['direct'], 'MiB/s', 1)} |\n"
                f"| through the forward (127.0.0.1:15001) | {spread(rates['forward'], 'MiB/s', 1)} |\n\n"
                f"The forward {verdict} against the straight transfer (target: under 10%). "
                "Both clients run in the same network namespace as the guest's libvirtd and vmdeck; the forward "
                "adds nftables' DNAT in the output hook and a masquerade on the bridge, nothing in user space. "
                "The guest is a TCG tiny VM (busybox nc from /dev/zero), so the guest's CPU bounds both sides.")
        print(body)
        if args.write:
            write_section("Port forwards", body)
    finally:
        with ns.connect() as on:
            try:
                lifecycle.delete(on, vm, force=True)
            except Exception as err:  # noqa: BLE001 - the namespace goes anyway
                print(f"cleanup: {err}", file=sys.stderr)
        stop_hosts([ns])


if __name__ == "__main__":
    main()

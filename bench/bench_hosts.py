"""Several hosts: `vmdeck list` latency and `vmdeck serve` memory for 1, 2, 4 and 8 libvirt hosts.

Each host is a libvirtd in network + mount namespaces of its own (tests/integration/nshosts.py),
with VMS_PER_HOST small VMs defined (not started: the list's work is the same, and 8 hosts of
running TCG guests would not fit a 2-core machine). Measured, median of --rounds runs:

  (a) `vmdeck list --json` over the N registered hosts     vs  `virsh -c URI list --all` once per
      host, one after the other (the raw tool, as a script that loops over hosts would do it)
  (b) the in-process call (vmdeck.cluster.inventory.list_everywhere) on open connections
  (c) (a) with one of the N hosts frozen (SIGSTOP: connects, never answers), --deadline 2
  (d) RSS of `vmdeck serve` after 20 GET /api/vms and one GET /api/hosts (its fleet connections open)
  (e) (a) with that `vmdeck serve` running: the command hands the list to it over the local socket
      (vmdeck.cli.handoff), whatever hosts are registered

Run:  .venv/bin/python bench/bench_hosts.py [--counts 1,2,4,8] [--rounds 5]   (as root, libvirtd running)
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from nshosts import NamespaceHost, start_hosts, stop_hosts  # noqa: E402

from vmdeck.cluster.fleet import Fleet  # noqa: E402
from vmdeck.cluster.inventory import list_everywhere  # noqa: E402
from vmdeck.cluster.registry import HostEntry, Registry  # noqa: E402
from vmdeck.host.connection import connect  # noqa: E402

VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]
VMS_PER_HOST = 10
DOMAIN = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"""


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    took = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{argv} failed: {done.stderr.strip()}")
    return took


def serve_rss_and_handoff(env: dict[str, str], rounds: int) -> tuple[float, list[float]]:
    """(d) and (e): the server's RSS after its requests, and `vmdeck list --json` handed to it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([*VMDECK, "serve", "--port", str(port)], env={**env, "VMDECK_ADMIN_PASSWORD": "bench-pw-1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/login", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=60) as client:
            reply = client.post("/api/auth/login", json={"username": "admin", "password": "bench-pw-1"})
            client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
            # The session cookie is Secure: httpx keeps it off plain http, a browser on loopback does not.
            client.headers["Cookie"] = f"vmdeck_session={reply.cookies['vmdeck_session']}"
            for _ in range(20):
                listed = client.get("/api/vms")
                assert listed.status_code == 200, listed.text
            assert client.get("/api/hosts").status_code == 200
        status = Path(f"/proc/{server.pid}/status").read_text()
        rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024
        timed([*VMDECK, "list", "--json"], env)
        return rss, [timed([*VMDECK, "list", "--json"], env) for _ in range(rounds)]
    finally:
        server.terminate()
        server.wait(10)


def measure(hosts: list[NamespaceHost], rounds: int) -> dict[str, float]:
    db = Path(tempfile.mkdtemp(prefix="vmdeck-bench-hosts-")) / "vmdeck.sqlite"
    registry = Registry(db)
    registry.remove("local")
    for index, ns in enumerate(hosts):
        registry.add(HostEntry(f"h{index}", ns.uri))
    env = {**os.environ, "VMDECK_DB": str(db)}
    env.pop("VMDECK_URI", None)
    timed([*VMDECK, "list", "--json"], env)  # warm the page cache
    cli = [timed([*VMDECK, "list", "--json"], env) for _ in range(rounds)]
    virsh = []
    for _ in range(rounds):
        started = time.perf_counter()
        for ns in hosts:
            subprocess.run(["virsh", "-q", "-c", ns.uri, "list", "--all"], capture_output=True, check=True, timeout=60)
        virsh.append(time.perf_counter() - started)
    with Fleet(registry=registry) as fleet:
        list_everywhere(fleet)
        inproc = []
        for _ in range(rounds):
            started = time.perf_counter()
            listed = list_everywhere(fleet)
            inproc.append(time.perf_counter() - started)
            assert len(listed.vms) == VMS_PER_HOST * len(hosts) and not listed.unreachable
    hosts[-1].pause()
    try:
        frozen = [timed([*VMDECK, "list", "--json", "--deadline", "2"], env) for _ in range(max(1, rounds // 2))]
    finally:
        hosts[-1].resume()
    rss, handed = serve_rss_and_handoff(env, rounds)
    shutil.rmtree(db.parent, ignore_errors=True)
    return {"cli": median_ms(cli), "virsh": median_ms(virsh), "inproc": median_ms(inproc),
            "frozen": median_ms(frozen), "rss": rss, "handed": median_ms(handed)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,2,4,8")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    with connect("qemu:///system") as local:
        hosts = start_hosts(local, max(counts))
    try:
        for ns in hosts:
            with ns.connect() as opened:
                for index in range(VMS_PER_HOST):
                    opened.conn.define(DOMAIN.format(name=f"vmdeck-bench-{ns.index}-{index}"))
        print("| hosts | `vmdeck list --json` | virsh list, host after host | ratio | in-process | "
              "one host frozen (deadline 2 s) | `vmdeck serve` RSS | handed to `vmdeck serve` | ratio to virsh |")
        print("|---|---|---|---|---|---|---|---|---|")
        for count in counts:
            r = measure(hosts[:count], args.rounds)
            print(f"| {count} | {r['cli']:.0f} ms | {r['virsh']:.0f} ms | {r['cli'] / r['virsh']:.2f} | "
                  f"{r['inproc']:.1f} ms | {r['frozen']:.0f} ms | {r['rss']:.0f} MiB | {r['handed']:.0f} ms | "
                  f"{r['handed'] / r['virsh']:.2f} |", flush=True)
    finally:
        stop_hosts(hosts)


if __name__ == "__main__":
    main()

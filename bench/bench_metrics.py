"""Benchmark: a Prometheus scrape of vmdeck's GET /metrics against prometheus-libvirt-exporter's, same VMs, one run.

    .venv/bin/python bench/bench_metrics.py [--counts 50 100] [--scrapes 30] [--rounds 3] [--write]

For each count N: a libvirt test-driver host (its own node XML) with N running domains, each with
2 vCPUs, 256 MiB, one file disk and one network interface. Both sides read that same description:
`vmdeck serve --connect test:///...` (scraped with a host-wide API token) and Debian's
prometheus-libvirt-exporter (--libvirt.uri=test:///...). Each round scrapes each side --scrapes times,
one after the other over one keep-alive connection, alternating sides, 1.1 s apart while vmdeck samples
every second, so nearly every vmdeck scrape renders a new sample (its render cache does not help); the table
gives the median and the 95th percentile of all scrapes, and exporter / vmdeck as the ratio.

What is measured, honestly: vmdeck answers from its last background sample (one bulk libvirt call
every 10 s, whose time is reported as "vmdeck sample" below), the exporter calls libvirt for every
domain on every scrape. libvirt's test driver runs inside the calling process, so the exporter's
calls are plain function calls here, cheaper than the RPCs (and QEMU monitor round trips) it makes on
a real host: the ratio is a lower bound for vmdeck's advantage. The test driver's bulk statistics
carry no disk or network counters, so vmdeck's scrape here has fewer series than it has on a real
host; the last column renders the full exposition (one disk and one NIC per VM, the series a
QEMU host gives) in-process with the same code the route runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from perfdoc import command_line, host_load, spread, stamp, write_section

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serving import free_port, wait_for_serve  # noqa: E402
from vmdeck.metrics.rates import Rates  # noqa: E402
from vmdeck.metrics.sample import BlockCounters, HostFigures, NetCounters, Sample, VmCounters  # noqa: E402
from vmdeck.metrics.sampler import Latest  # noqa: E402
from vmdeck.store.accounts import Principal  # noqa: E402

TITLE = "Metrics scrape"
PASSWORD = "bench-admin-password"


def node_xml(folder: Path, count: int) -> Path:
    (folder / "pool").mkdir(exist_ok=True)
    domains = "".join(f"""
  <domain type='test'><name>bench-{i:03d}</name><memory unit='MiB'>256</memory><vcpu>2</vcpu>
    <os><type arch='x86_64'>hvm</type></os><devices>
      <disk type='file' device='disk'><source file='{folder}/pool/d{i}.img'/><target dev='vda' bus='virtio'/></disk>
      <interface type='ethernet'><target dev='vnet{i}'/><mac address='52:54:00:00:{i // 256:02x}:{i % 256:02x}'/></interface>
    </devices></domain>""" for i in range(count))
    path = folder / "node.xml"
    path.write_text(f"""<node><cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets>
  <cores>4</cores><threads>1</threads></cpu><memory>8388608</memory>
  <pool type='dir'><name>vmdeck</name><target><path>{folder}/pool</path></target>
    <capacity unit='GiB'>100</capacity><allocation unit='GiB'>10</allocation><available unit='GiB'>90</available></pool>
  {domains}
</node>""")
    return path


def start_vmdeck(folder: Path, uri: str) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    log = folder / "serve.log"
    # A sample every second and scrapes 1.1 s apart: each scrape renders a new sample (no render cache hit),
    # as with a Prometheus scraping less often than vmdeck samples.
    env = {**os.environ, "VMDECK_ADMIN_PASSWORD": PASSWORD, "VMDECK_DATA_DIR": str(folder / "data"),
           "VMDECK_LOCAL_SOCKET": "off", "VMDECK_METRICS_INTERVAL": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "vmdeck.cli.main", "--connect", uri, "serve",
                                    "--port", str(port), "--db", str(folder / "web.sqlite")],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for_serve(url, process, log)
    login = httpx.post(f"{url}/api/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=60)
    login.raise_for_status()
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in login.cookies.items()),
               "X-CSRF-Token": login.json()["csrf_token"]}
    token = httpx.post(f"{url}/api/auth/tokens", json={"name": "bench", "scopes": ["metrics"]}, headers=headers,
                       timeout=60).json()["token"]
    return process, url, token


def start_exporter(folder: Path, uri: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(folder / "exporter.log", "wb")  # noqa: SIM115 - the process writes it until it ends
    process = subprocess.Popen(["prometheus-libvirt-exporter", f"--libvirt.uri={uri}",
                                f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/metrics", timeout=10).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError((folder / "exporter.log").read_text())
        time.sleep(0.2)


def series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def full_render_ms(count: int, rounds: int) -> float:
    """The exposition of `count` VMs with one disk and one NIC each, rendered in-process (ms, median)."""
    from vmdeck.api.metrics import render

    vms = tuple(VmCounters(name=f"bench-{i:03d}", project="default", state_code=1, vcpus=2,
                           maximum_memory_bytes=256 << 20, memory_usage_bytes=256 << 20, cpu_time_ns=10**12,
                           run_delay_ns=10**9, rss_bytes=300 << 20, touched_bytes=200 << 20, tcg_cache_bytes=32 << 20,
                           blocks=(BlockCounters("vda", f"/pool/d{i}.img", 1, 2, 3, 4, 1 << 30, 1 << 29),),
                           nets=(NetCounters(f"vnet{i}", 1, 2, 3, 4),)) for i in range(count))
    latest = Latest(Sample(time.time(), time.monotonic(), HostFigures("h", True, 4, 8 << 30, 2 * count, count << 28),
                           vms), {vm.name: Rates(cpu_pct=1.0) for vm in vms}, Rates())
    admin = Principal(1, "admin", True, "token")
    times = []
    for _ in range(rounds * 10):
        started = time.perf_counter()
        render(latest, admin, {})
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def scrape(client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    reply = client.get(f"{url}/metrics", headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    reply.raise_for_status()
    return elapsed, reply.text


def run(count: int, scrapes: int, rounds: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="vmdeck-bench-metrics-") as tmp:
        folder = Path(tmp)
        uri = f"test://{node_xml(folder, count)}"
        vmdeck, vurl, token = start_vmdeck(folder, uri)
        exporter, eurl = start_exporter(folder, uri)
        try:
            bearer = {"Authorization": f"Bearer {token}"}
            with httpx.Client(timeout=60) as vc, httpx.Client(timeout=60) as ec:
                deadline = time.monotonic() + 120
                while f'domain="bench-{count - 1:03d}"' not in scrape(vc, vurl, bearer)[1]:
                    if time.monotonic() > deadline:
                        raise RuntimeError("vmdeck's first sample never came")
                    time.sleep(0.5)
                ours: list[float] = []
                theirs: list[float] = []
                for _ in range(rounds):
                    for _ in range(scrapes):
                        time.sleep(1.1)
                        ours.append(scrape(vc, vurl, bearer)[0])
                        theirs.append(scrape(ec, eurl, {})[0])
                v_text = scrape(vc, vurl, bearer)[1]
                e_text = scrape(ec, eurl, {})[1]
            sample_s = next((float(line.split()[-1]) for line in v_text.splitlines()
                             if line.startswith("vmdeck_sample_duration_seconds")), float("nan"))
        finally:
            for process in (vmdeck, exporter):
                process.terminate()
                process.wait(30)
    ratio = statistics.median(theirs) / statistics.median(ours)
    p95 = lambda values: sorted(values)[int(0.95 * (len(values) - 1))]  # noqa: E731
    return [f"| {count} | {spread(ours, digits=1)}, p95 {p95(ours):.1f} ms ({series(v_text)} series) "
            f"| {spread(theirs, digits=1)}, p95 {p95(theirs):.1f} ms ({series(e_text)} series) "
            f"| **{ratio:.1f}x** | {sample_s * 1000:.1f} ms | {full_render_ms(count, rounds):.1f} ms |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write", action="store_true", help=f"replace the '{TITLE}' section of docs/PERFORMANCE.md")
    args = parser.parse_args()
    rows = []
    for count in args.counts:
        rows += run(count, args.scrapes, args.rounds)
    body = f"""Command: `{command_line()}` ({stamp()}, {host_load()})

GET /metrics of `vmdeck serve` against prometheus-libvirt-exporter (Debian's 0.2.0) on the same
libvirt test-driver host: N running domains with 2 vCPUs, one disk and one NIC each, scraped
{args.rounds} x {args.scrapes} times per side over a keep-alive connection, sides alternating, 1.1 s apart while
vmdeck samples every second: nearly every vmdeck scrape renders a fresh sample (no cache hit). Times are
median (min-max) of the scrapes, client side. vmdeck answers from its background sample (one bulk
libvirt call per interval, 10 s by default, its duration in "vmdeck sample"); the exporter calls libvirt per domain on each
scrape, here in-process (the test driver lives in the client library), so on a real host, where each
call is an RPC and a QEMU monitor round trip, the exporter is slower and the ratio larger. The test
driver gives vmdeck no disk or network counters: "full render" is the same renderer, in-process, with one
disk and one NIC per VM (the series a QEMU host yields), to show the cost of the complete exposition.

| VMs | vmdeck GET /metrics | prometheus-libvirt-exporter | exporter / vmdeck | vmdeck sample | full render |
|---|---|---|---|---|---|
""" + "\n".join(rows)
    print(f"## {TITLE}\n\n{body}")
    if args.write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()

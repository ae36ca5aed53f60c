"""Benchmark: the control plane's store on SQLite and on PostgreSQL (one server and two), in one run.

    .venv/bin/python bench/bench_store.py [--vms 30] [--clients 20] [--seconds 5] [--creates 10] [--rounds 3] [--write]

1. API: a real `vmdeck serve` on SQLite, one on PostgreSQL, and two on one PostgreSQL (wrk's clients
   split over both), with --vms light shut-off VMs defined in libvirt: wrk keeps --clients
   connections on GET /api/vms, then GET /api/vms/{name}, for --seconds each (API token); then
   --creates creates one after another (POST /api/vms, define only; on two servers alternately).
   Ratios are to the SQLite server.
2. 20 concurrent creates through the API on each store (two servers: 10 on each); p50/p99 per create and
   creates per second. Target: PostgreSQL's p50 within 1.5x of SQLite's.
3. The quota reservation alone: 20 threads each reserving one instance of one project at once
   (store.quota.reserve with the project's VMs counted on the real libvirt host, an empty body), per
   backend in one process; the p50 and p99 of one reservation (count, check-and-insert, release).
PostgreSQL is a private cluster of Debian's postgresql-15 started for the run (tests/pg_support.py).
Prints one Markdown section; --write replaces it in docs/PERFORMANCE.md ("Store backends").
Everything it creates is named vmdeck-dev-bench-store-* and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from bench_web import PASSWORD, Load, api_token, pct, wrk_load
from perfdoc import command_line, host_load, spread, stamp, write_section

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_support import start_pg, stop_pg  # noqa: E402
from serving import free_port, wait_for_serve  # noqa: E402
from vmdeck.errors import NotFound  # noqa: E402
from vmdeck.host.connection import Host, connect  # noqa: E402
from vmdeck.vm import lifecycle  # noqa: E402

PREFIX = "vmdeck-dev-bench-store-"
PATHS = ("/api/vms", "show")


def define_light_vms(host: Host, count: int) -> list[str]:
    names = [f"{PREFIX}{i:02d}" for i in range(count)]
    for name in names:
        if not host.exists(name):
            host.conn.raw.defineXML(f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
                                    "<vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os></domain>")
    return names


class Server:
    def __init__(self, db: str, folder: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k != "VMDECK_URI"}
        env.update(VMDECK_ADMIN_PASSWORD=PASSWORD, VMDECK_DATA_DIR=str(folder / f"data-{name}"))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "vmdeck.cli.main", "serve", "--port",
                                             str(self.port), "--db", db], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_serve(self.url, self.process, self.log)
        self.token, _cookie = api_token(self.url)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def api_round(servers: list[Server], show: str, clients: int, seconds: float) -> dict[str, Load]:
    """wrk on every server at once, the clients split between them; the slowest server's p50/p99."""
    measured: dict[str, Load] = {}
    for label in PATHS:
        path = "/api/vms" if label == "/api/vms" else f"/api/vms/{show}"
        results: list[Load] = []
        threads = [threading.Thread(target=lambda s=s: results.append(
            wrk_load(s.url, s.token, path, max(1, clients // len(servers)), seconds))) for s in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        measured[label] = Load(max(r.p50_ms for r in results), max(r.p99_ms for r in results),
                               sum(r.requests for r in results))
    return measured


def creates(host: Host, servers: list[Server], count: int, tag: str) -> list[float]:
    times = []
    for i in range(count):
        server = servers[i % len(servers)]
        name = f"{PREFIX}{tag}-{i}"
        start = time.perf_counter()
        reply = httpx.post(f"{server.url}/api/vms", timeout=300, headers={"Authorization": f"Bearer {server.token}"},
                           json={"name": name, "template": "q35-virtio", "memory_mib": 64, "vcpus": 1, "disk_gib": 1,
                                 "project": "default", "start": False})
        times.append((time.perf_counter() - start) * 1000)
        if reply.status_code != 201:
            raise RuntimeError(f"create {name}: {reply.status_code} {reply.text}")
    return times


def concurrent_creates(servers: list[Server], count: int, tag: str) -> tuple[list[float], float]:
    """`count` creates sent at once, spread over `servers`: each one's milliseconds, and creates per second."""
    gate = threading.Barrier(count)
    times: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        server = servers[i % len(servers)]
        gate.wait()
        start = time.perf_counter()
        reply = httpx.post(f"{server.url}/api/vms", timeout=600, headers={"Authorization": f"Bearer {server.token}"},
                           json={"name": f"{PREFIX}{tag}-{i}", "template": "q35-virtio", "memory_mib": 64, "vcpus": 1,
                                 "disk_gib": 1, "project": "default", "start": False})
        if reply.status_code != 201:
            raise RuntimeError(f"create: {reply.status_code} {reply.text}")
        with lock:
            times.append((time.perf_counter() - start) * 1000)

    workers = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if len(times) != count:
        raise RuntimeError(f"only {len(times)} of {count} creates succeeded")
    return times, count / (time.perf_counter() - began)


def reservations(host: Host, db: str, threads: int) -> tuple[list[float], float]:
    """`threads` reservations at once on `db`: each one's milliseconds, and reservations per second."""
    from vmdeck.store.db import open_database
    from vmdeck.store.quota import Demand, reserve
    from vmdeck.store.tenancy import Tenancy

    store = open_database(db)
    Tenancy(store).ensure_project("benchq")
    times: list[float] = []
    lock = threading.Lock()
    gate = threading.Barrier(threads)

    def one(i: int) -> None:
        gate.wait()
        start = time.perf_counter()
        with reserve(store, host, "benchq", Demand(instances=1, vcpus=1, memory_mib=64), f"vm:{PREFIX}q-{i}"):
            pass
        with lock:
            times.append((time.perf_counter() - start) * 1000)

    workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return times, threads / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=30)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--creates", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    load = host_load()
    host = connect("qemu:///system")
    folder = Path(tempfile.mkdtemp(prefix="vmdeck-bench-store-"))
    pg = start_pg()
    servers: dict[str, list[Server]] = {}
    light: list[str] = []
    try:
        light = define_light_vms(host, args.vms)
        pg.sql("CREATE DATABASE bench_api")
        pg.sql("CREATE DATABASE bench_quota")
        servers["SQLite, one server"] = [Server(str(folder / "web.sqlite"), folder, "sqlite")]
        servers["PostgreSQL, one server"] = [Server(pg.url("bench_api"), folder, "pg1")]
        servers["PostgreSQL, two servers"] = [servers["PostgreSQL, one server"][0],
                                              Server(pg.url("bench_api"), folder, "pg2")]
        for group in servers.values():  # warm-up: inventories loaded, show views computed
            api_round(group, light[0], 2, 1)
        api: dict[str, list[dict[str, Load]]] = {label: [] for label in servers}
        for _ in range(args.rounds):  # interleaved, so a change in the host's load hits all alike
            for label, group in servers.items():
                api[label].append(api_round(group, light[0], args.clients, args.seconds))
        made: dict[str, list[float]] = {}
        for n, (label, group) in enumerate(servers.items()):
            made[label] = creates(host, group, args.creates, f"c{n}")
        burst: dict[str, list[tuple[list[float], float]]] = {label: [] for label in servers}
        for r in range(args.rounds):
            for n, (label, group) in enumerate(servers.items()):
                burst[label].append(concurrent_creates(group, 20, f"b{r}{n}"))
                for dom in host.conn.raw.listAllDomains(0):  # the next round starts from the same VMs
                    if dom.name().startswith(f"{PREFIX}b{r}{n}-"):
                        lifecycle.delete(host, dom.name(), force=True)
        quota: dict[str, list[tuple[list[float], float]]] = {"SQLite": [], "PostgreSQL": []}
        for r in range(args.rounds):
            for label, db in (("SQLite", str(folder / f"quota-{r}.sqlite")), ("PostgreSQL", pg.url("bench_quota"))):
                quota[label].append(reservations(host, db, 20))
        text = section(args, load, api, made, burst, quota, len(light))
        print("## Store backends\n\n" + text, flush=True)
    finally:
        for group in servers.values():
            for server in group:
                with contextlib.suppress(Exception):
                    server.stop()
        for dom in host.conn.raw.listAllDomains(0):
            if dom.name().startswith(PREFIX):
                with contextlib.suppress(NotFound):
                    lifecycle.delete(host, dom.name(), force=True)
        stop_pg(pg)
    if args.write:
        write_section("Store backends", text)


def section(args: argparse.Namespace, load: str, api: dict[str, list[dict[str, Load]]], made: dict[str, list[float]],
            burst: dict[str, list[tuple[list[float], float]]], quota: dict[str, list[tuple[list[float], float]]],
            vms: int) -> str:
    base = "SQLite, one server"
    lines = [
        f"Command: `{command_line()}` ({stamp()}; {load}).", "",
        f"Real `vmdeck serve` processes on loopback, {vms} light VMs defined in libvirt; {args.clients} wrk "
        f"connections with an API token for {args.seconds:g} s per request and round (two servers: half on each, "
        f"the slower server's figure), {args.rounds} rounds interleaved, median (min-max) over rounds; then "
        f"{args.creates} creates one after another (define only, on two servers alternately). PostgreSQL 15 "
        "is a private cluster on the same machine. Ratios are to the SQLite server's median.", "",
        "| store | list p50 ms | list p99 ms | show p50 ms | show p99 ms | requests per round | create ms | "
        "list / SQLite | show / SQLite | create / SQLite |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def med(label: str, path: str, field: str) -> float:
        return statistics.median(getattr(r[path], field) for r in api[label])

    for label in api:
        rounds = api[label]
        reqs = [float(sum(r[p].requests for p in PATHS)) for r in rounds]
        lines.append(
            f"| {label} | {spread([r['/api/vms'].p50_ms for r in rounds], '', 1)} | "
            f"{spread([r['/api/vms'].p99_ms for r in rounds], '', 1)} | {spread([r['show'].p50_ms for r in rounds], '', 1)} | "
            f"{spread([r['show'].p99_ms for r in rounds], '', 1)} | {spread(reqs, '', 0)} | {spread(made[label], '', 0)} | "
            f"{med(label, '/api/vms', 'p50_ms') / med(base, '/api/vms', 'p50_ms'):.2f}x | "
            f"{med(label, 'show', 'p50_ms') / med(base, 'show', 'p50_ms'):.2f}x | "
            f"{statistics.median(made[label]) / statistics.median(made[base]):.2f}x |")
    lines += ["", f"20 concurrent creates (POST /api/vms, define only, each holding a quota reservation and a "
              f"placement claim), {args.rounds} rounds; per create p50 and p99 (median over rounds) and creates "
              "per second.", "",
              "| store | p50 ms | p99 ms | creates/s | p50 / SQLite |", "|---|---|---|---|---|"]
    burst_p50 = {label: [statistics.median(t) for t, _ in runs] for label, runs in burst.items()}
    for label, runs in burst.items():
        lines.append(f"| {label} | {spread(burst_p50[label], '', 0)} | {spread([pct(t, 99) for t, _ in runs], '', 0)} | "
                     f"{spread([rate for _, rate in runs], '', 1)} | "
                     f"{statistics.median(burst_p50[label]) / statistics.median(burst_p50[base]):.2f}x |")
    burst_ratio = statistics.median(burst_p50["PostgreSQL, one server"]) / statistics.median(burst_p50[base])
    lines += ["", f"Target PostgreSQL p50 within 1.5x of SQLite under 20 concurrent creates: "
              f"**{'met' if burst_ratio <= 1.5 else 'missed'}** ({burst_ratio:.2f}x)."]
    lines += ["", "The reservation alone: 20 threads reserve one instance of one project at the same moment "
              "(`store.quota.reserve`: the project's VMs counted on the real libvirt host with no lock held, then "
              "the short exclusive check-and-insert, then the release), one process, "
              f"{args.rounds} rounds; per reservation p50 and p99 (median over rounds) and reservations per second.", "",
              "| backend | p50 ms | p99 ms | reservations/s | p50 / SQLite |", "|---|---|---|---|---|"]
    p50 = {label: [statistics.median(t) for t, _ in runs] for label, runs in quota.items()}
    for label, runs in quota.items():
        ratio = statistics.median(p50[label]) / statistics.median(p50["SQLite"])
        lines.append(f"| {label} | {spread(p50[label], '', 1)} | {spread([pct(t, 99) for t, _ in runs], '', 1)} | "
                     f"{spread([rate for _, rate in runs], '', 1)} | {ratio:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

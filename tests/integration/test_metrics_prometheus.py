"""Metrics end to end on the real libvirtd: a real Prometheus (Debian's package) scrapes a real `vmdeck serve`,
PromQL sees a busy VM's CPU rate above an idle one's, the history API records the busy loop, and the
history survives a restart of the server.

One VM of this module runs a busy loop (started through the guest agent); the session's shared VM is
the idle one. The server samples every 2 s and Prometheus scrapes every 2 s, so the whole test takes
about a minute beyond the boot.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from itest_support import PREFIX, READY_TIMEOUT_S, delete_vm, wait_for

from serving import free_port, wait_for_serve
from vmdeck.host.connection import Host
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.agent import ExecResult
from vmdeck.vm.create import create_vm

PASSWORD = "metrics-admin-password"


@dataclass
class Serve:
    url: str
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.folder / "serve.log"
        env = {**os.environ, "VMDECK_ADMIN_PASSWORD": PASSWORD, "VMDECK_URI": "qemu:///system",
               "VMDECK_METRICS_INTERVAL": "2"}
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vmdeck.cli.main", "serve", "--port", self.url.rsplit(":", 1)[1],
                 "--db", str(self.folder / "web.sqlite")], stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_for_serve(self.url, self.process, log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


@pytest.fixture(scope="module")
def busy_vm(host: Host) -> Iterator[str]:
    name = f"{PREFIX}busy-{uuid.uuid4().hex[:6]}"
    create_vm(host, resolve("tiny", name, Overrides(vcpus=1, memory_mib=128)))
    lifecycle.start(host, name, wait=True, timeout=READY_TIMEOUT_S)
    yield name
    delete_vm(host, name)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    server = Serve(f"http://127.0.0.1:{free_port()}", tmp_path_factory.mktemp("metrics-serve"))
    server.start()
    yield server
    server.stop()


def _admin(serve: Serve) -> httpx.Client:
    client = httpx.Client(base_url=serve.url, timeout=60)
    reply = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    reply.raise_for_status()
    # The session cookie is Secure (browsers keep it on 127.0.0.1; httpx only for https): sent by hand.
    client.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in reply.cookies.items())
    client.cookies.clear()
    client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
    return client


def _prometheus(folder: Path, target: str, token: str) -> tuple[subprocess.Popen[bytes], str]:
    (folder / "token").write_text(token)
    (folder / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 2s
  scrape_timeout: 2s
scrape_configs:
  - job_name: vmdeck
    metrics_path: /metrics
    authorization:
      credentials_file: {folder / 'token'}
    static_configs:
      - targets: ['{target}']
""")
    port = free_port()
    log = open(folder / "prometheus.log", "wb")  # noqa: SIM115 - the process writes it until it ends
    process = subprocess.Popen(["prometheus", f"--config.file={folder / 'prometheus.yml'}",
                                f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    return process, f"http://127.0.0.1:{port}"


def _query(prom: str, promql: str) -> float | None:
    reply = httpx.get(f"{prom}/api/v1/query", params={"query": promql}, timeout=10).json()
    result = reply["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_prometheus_sees_the_busy_vm_above_the_idle_one_and_history_survives_a_restart(
        serve: Serve, busy_vm: str, shared_vm: str, run_in_guest: Callable[..., ExecResult],
        tmp_path: Path) -> None:
    admin = _admin(serve)
    reply = admin.post("/api/auth/tokens", json={"name": "prometheus", "scopes": ["metrics"], "expires_in_days": 1})
    assert reply.status_code == 201, reply.text
    token = reply.json()["token"]
    started = run_in_guest(busy_vm, "nohup sh -c 'while :; do :; done' >/dev/null 2>&1 &")
    assert started.exit_code == 0
    prometheus, prom = _prometheus(tmp_path, serve.url.split("//", 1)[1], token)
    try:
        def rates() -> tuple[float, float] | None:
            busy = _query(prom, f'rate(libvirt_domain_info_cpu_time_seconds_total{{domain="{busy_vm}"}}[20s])')
            idle = _query(prom, f'rate(libvirt_domain_info_cpu_time_seconds_total{{domain="{shared_vm}"}}[20s])')
            return (busy, idle) if busy is not None and idle is not None and busy > idle else None

        busy_rate, idle_rate = wait_for(rates, timeout=240, interval=2)  # type: ignore[misc]
        assert busy_rate > idle_rate
        # The target is up and scraped with the scoped token.
        assert _query(prom, 'up{job="vmdeck"}') == 1.0
    finally:
        prometheus.terminate()
        prometheus.wait(30)

    def cpu_points(vm: str) -> list[list[float | None]]:
        series = admin.get(f"/api/vms/{vm}/history", params={"range": "1h"}).json()
        cpu = series["fields"].index("cpu_pct") if series["fields"] else 0
        return [[p[0], p[cpu]] for p in series["points"] if p[cpu] is not None]

    # The busy loop shows: a 10 s point of the busy VM above every point of the idle one.
    def busy_points() -> list[list[float | None]]:
        idle = max((p[1] or 0.0 for p in cpu_points(shared_vm)), default=0.0)
        return [p for p in cpu_points(busy_vm) if (p[1] or 0.0) > max(idle, 10.0)]

    deadline = time.monotonic() + 120
    while not (before := busy_points()):
        assert time.monotonic() < deadline, (cpu_points(busy_vm), cpu_points(shared_vm))
        time.sleep(2)
    serve.stop()
    serve.start()
    admin = _admin(serve)
    after = admin.get(f"/api/vms/{busy_vm}/history", params={"range": "1h"}).json()["points"]
    kept = {p[0] for p in after}
    assert {p[0] for p in before} <= kept, (before, after)
    assert admin.get("/api/host/history", params={"range": "1h"}).json()["points"]

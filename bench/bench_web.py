"""Benchmark: the web API and the console proxy against their raw baselines, in one run.

    .venv/bin/python bench/bench_web.py [--vms 50] [--clients 20] [--seconds 10] [--rounds 3] [--no-console] [--write]

1. API latency: a real `vmdeck serve` on a free loopback port, --vms extra (shut-off, diskless)
   domains defined in libvirt; wrk keeps --clients connections asking GET /api/vms, then GET
   /api/vms/{name}, for --seconds each (API token auth). Baseline: the same core calls (list_vms,
   show_vm) in-process.
2. Console proxy: one running tiny VM; an RFB client asks QEMU for full raw framebuffer updates
   (720x400x4 bytes each) through vmdeck's ticketed proxy and directly from QEMU's own websocket
   port; throughput (MB/s) and the round trip of a 1x1 update (added latency).
Prints two Markdown sections; --write replaces them in docs/PERFORMANCE.md ("Web API", "Console proxy").
Everything it creates is named vmdeck-dev-bench-web-* and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from perfdoc import command_line, host_load, spread, stamp, write_section
from websockets.sync.client import connect as ws_connect

from vmdeck.console.display import display_info
from vmdeck.errors import NotFound
from vmdeck.host.connection import Host, connect
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm
from vmdeck.vm.inventory import list_vms, show_vm

PREFIX = "vmdeck-dev-bench-web-"
PASSWORD = "bench-admin-password"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# --- API latency ------------------------------------------------------------------------------------
def define_light_vms(host: Host, count: int) -> list[str]:
    names = [f"{PREFIX}{i:02d}" for i in range(count)]
    for name in names:
        if not host.exists(name):
            host.conn.raw.defineXML(f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
                                "<vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os></domain>")
    return names


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "VMDECK_ADMIN_PASSWORD": PASSWORD}
    process = subprocess.Popen([sys.executable, "-m", "vmdeck.cli.main", "serve", "--port", str(port), "--db",
                                str(folder / "web.sqlite")], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/login", timeout=1).status_code == 200:
                return process, url
        time.sleep(0.2)
    process.kill()
    raise SystemExit("vmdeck serve did not start")


def api_token(url: str) -> tuple[str, str]:
    # Signing in hashes the password (Argon2) on a freshly started server: far over httpx's 5 s default
    # on a loaded machine.
    client = httpx.Client(base_url=url, timeout=120)
    reply = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    cookie = f"vmdeck_session={reply.cookies['vmdeck_session']}"
    token = client.post("/api/auth/tokens", json={"name": "bench"},
                        headers={"X-CSRF-Token": reply.json()["csrf_token"], "Cookie": cookie}).json()["token"]
    return token, cookie


@dataclass(frozen=True)
class Load:
    """What one wrk run measured for one path."""

    p50_ms: float
    p99_ms: float
    requests: int


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_load(url: str, token: str, path: str, clients: int, seconds: float) -> Load:
    """`clients` connections asking for `path` back to back for `seconds`, with wrk (a compiled client on
    one thread: a Python client on these 2 cores took as much CPU as the server, and its own event
    loop's queueing was part of every figure it reported)."""
    argv = ["wrk", "-t", "1", "-c", str(clients), "-d", f"{max(1, round(seconds))}s", "--latency",
            "-H", f"Authorization: Bearer {token}", url + path]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=True)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if bad:
        raise RuntimeError(f"{path}: {bad.group(1)} answers were not 2xx:\n{done.stdout}")
    found = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)\s*$", done.stdout, re.MULTILINE))
    total = re.search(r"(\d+) requests in", done.stdout)
    if set(found) != {"50", "99"} or total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{done.stdout}")

    def ms(text: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        return float(number) * _WRK_UNITS[unit]

    return Load(ms(found["50"]), ms(found["99"]), int(total.group(1)))


def core_baseline(host: Host, name: str, rounds: int) -> dict[str, float]:
    result = {}
    for label, action in (("list", lambda: list_vms(host)), ("show", lambda: show_vm(host, name).to_dict())):
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            action()
            times.append((time.perf_counter() - start) * 1000)
        result[label] = statistics.median(times)
    return result


# --- console proxy -----------------------------------------------------------------------------------
class Rfb:
    """Just enough of an RFB 3.8 client over a websocket to pull raw framebuffer updates."""

    def __init__(self, ws) -> None:  # type: ignore[no-untyped-def]
        self.ws = ws
        self.buffer = bytearray()
        self.received = 0
        version = self.read(12)
        ws.send(version)
        count = self.read(1)[0]
        types = self.read(count)
        assert 1 in types, f"VNC asks for authentication {list(types)}"
        ws.send(b"\x01")
        assert struct.unpack(">I", self.read(4))[0] == 0
        ws.send(b"\x01")  # shared
        self.width, self.height = struct.unpack(">HH", self.read(4))
        pixel = self.read(16)
        self.bpp = pixel[0] // 8
        self.read(struct.unpack(">I", self.read(4))[0])
        ws.send(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: raw only

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            data = self.ws.recv(timeout=30)
            self.buffer += data if isinstance(data, bytes) else data.encode()
            self.received += len(data)
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def update(self, w: int, h: int) -> int:
        self.ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
        while True:
            kind = self.read(1)[0]
            if kind == 0:
                break
            raise AssertionError(f"unexpected RFB message {kind}")
        self.read(1)
        total = 0
        for _ in range(struct.unpack(">H", self.read(2))[0]):
            _x, _y, rw, rh, encoding = struct.unpack(">HHHHi", self.read(12))
            assert encoding == 0, encoding
            total += len(self.read(rw * rh * self.bpp))
        return total


class UnixRfbSocket:
    """QEMU's VNC Unix socket with the two calls Rfb makes of a websocket (send, recv with a timeout)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("QEMU closed the VNC socket")
        return data

    def __enter__(self) -> UnixRfbSocket:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()


def measure_console(open_ws, frames: int, pings: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    with open_ws() as ws:
        rfb = Rfb(ws)
        rfb.update(rfb.width, rfb.height)  # warm up
        start = time.perf_counter()
        payload = sum(rfb.update(rfb.width, rfb.height) for _ in range(frames))
        seconds = time.perf_counter() - start
        rtts = []
        for _ in range(pings):
            t0 = time.perf_counter()
            rfb.update(1, 1)
            rtts.append((time.perf_counter() - t0) * 1000)
    return payload / seconds / 1e6, statistics.median(rtts)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_rss_mib(process: subprocess.Popen[bytes]) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def api_section(args: argparse.Namespace, total_vms: int, rounds: list[dict[str, Load]],
                base: list[dict[str, float]], show_path: str, rss: float, cpu_per_request: list[float]) -> str:
    lines = [
        f"Command: `{command_line()}` ({stamp()}; {LOAD}).", "",
        f"A real `vmdeck serve` (uvicorn, one process) on loopback, {total_vms} VMs defined in libvirt; "
        f"{args.clients} concurrent connections with an API token, each asking again as soon as it has its "
        f"answer, for {args.seconds:g} s per endpoint per round (wrk, one thread); {len(rounds)} rounds; "
        "each round's p50/p99, then the median over rounds (min-max). The baseline is "
        "the same core call made in-process by one caller (list_vms: the bulk libvirt calls; show_vm: lookup + XML "
        "parse), measured between the rounds.", "",
        "| request | p50 ms | p99 ms | requests per round | target | core call in-process, ms | API p50 / core |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, path, key in (("GET /api/vms (list)", "/api/vms", "list"),
                             ("GET /api/vms/{name} (show)", show_path, "show")):
        p50s = [r[path].p50_ms for r in rounds]
        p99s = [r[path].p99_ms for r in rounds]
        counts = [float(r[path].requests) for r in rounds]
        core = [b[key] for b in base]
        met = statistics.median(p50s) <= 30 and statistics.median(p99s) <= 200
        lines.append(f"| {label} | {spread(p50s, '', 1)} | {spread(p99s, '', 1)} | {spread(counts, '', 0)} | "
                     f"p50 <= 30, p99 <= 200: **{'met' if met else 'missed'}** | {spread(core, '', 2)} | "
                     f"{statistics.median(p50s) / statistics.median(core):.1f}x |")
    lines += ["", f"Server CPU time per request (list and show together): "
              f"{spread(cpu_per_request, 'ms', 2)}. Server RSS after the run: {rss:.0f} MiB "
              "(target with 100 VMs: <= 150 MiB)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="load per endpoint per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--no-console", action="store_true", help="API latency only (no VM is booted)")
    parser.add_argument("--write", action="store_true", help="put the sections into docs/PERFORMANCE.md")
    args = parser.parse_args()
    global LOAD
    LOAD = host_load()
    host = connect("qemu:///system")
    console_vm = f"{PREFIX}console"
    light: list[str] = []
    process = None
    console_text = None
    try:
        light = define_light_vms(host, args.vms)
        folder = Path(tempfile.mkdtemp(prefix="vmdeck-bench-web-"))
        process, url = start_server(folder)
        token, _cookie = api_token(url)
        total_vms = len(list_vms(host))
        show_path = f"/api/vms/{light[0]}"
        for path in ("/api/vms", show_path):  # warm-up: the inventory is loaded, the show view computed
            wrk_load(url, token, path, 2, 1)
        rounds, base = [], []
        cpu_per_request = []
        for _ in range(args.rounds):  # interleaved: server under load, then the core call alone
            cpu_before = cpu_seconds(process.pid)
            measured = {path: wrk_load(url, token, path, args.clients, args.seconds) for path in ("/api/vms", show_path)}
            rounds.append(measured)
            served = sum(load.requests for load in measured.values())
            cpu_per_request.append((cpu_seconds(process.pid) - cpu_before) * 1000 / served)
            base.append(core_baseline(host, light[0], 20))
        rss = server_rss_mib(process)
        api_text = api_section(args, total_vms, rounds, base, show_path, rss, cpu_per_request)
        print("## Web API\n\n" + api_text, flush=True)
        if not args.no_console:
            console_text = bench_console(host, console_vm, url, token, args.frames)
            print("## Console proxy\n\n" + console_text)
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        for name in light:
            with contextlib.suppress(Exception):
                host.lookup(name).raw.undefine()
        with contextlib.suppress(NotFound):
            lifecycle.delete(host, console_vm, force=True)
    if args.write:
        write_section("Web API", api_text)
        if console_text:
            write_section("Console proxy", console_text)


def bench_console(host: Host, console_vm: str, url: str, token: str, frames: int) -> str:
    if not host.exists(console_vm):
        create_vm(host, resolve("tiny", console_vm, Overrides(vcpus=1, memory_mib=256)))
    if show_vm(host, console_vm).state != "running":
        lifecycle.start(host, console_vm, wait=True, timeout=180)
    info = display_info(host.lookup(console_vm))
    ws_base = url.replace("http://", "ws://")

    def via_proxy():  # type: ignore[no-untyped-def]
        ticket = httpx.post(f"{url}/api/vms/{console_vm}/console/ticket", json={"kind": "vnc"},
                            headers={"Authorization": f"Bearer {token}"}).json()
        return ws_connect(ws_base + ticket["path"], subprotocols=["binary"], max_size=None, compression=None,
                          additional_headers={"Authorization": f"Bearer {token}"})

    def direct():  # type: ignore[no-untyped-def]
        if info.socket is not None:  # vmdeck's templates: QEMU's VNC on its Unix socket (root only)
            return UnixRfbSocket(info.socket)
        return ws_connect(f"ws://127.0.0.1:{info.websocket}", subprotocols=["binary"], max_size=None,
                          compression=None)

    results = {}
    for label, opener in (("direct", direct), ("proxy", via_proxy), ("direct2", direct), ("proxy2", via_proxy)):
        results[label] = measure_console(opener, frames, 30)
    direct_mbs = statistics.mean([results["direct"][0], results["direct2"][0]])
    proxy_mbs = statistics.mean([results["proxy"][0], results["proxy2"][0]])
    direct_rtt = statistics.mean([results["direct"][1], results["direct2"][1]])
    proxy_rtt = statistics.mean([results["proxy"][1], results["proxy2"][1]])
    return "\n".join([
        f"Command: `{command_line()}` ({stamp()}; {LOAD}).", "",
        f"Full raw framebuffer updates ({frames} x 720x400x4 bytes per run, two runs each, "
        "interleaved) from QEMU's VNC server, directly on its Unix socket and through vmdeck's ticketed proxy; "
        "latency is the round trip of a 1x1 update request (median of 30).", "",
        "| path | throughput MB/s | 1x1 round trip ms |", "|---|---|---|",
        f"| direct to QEMU's VNC socket | {direct_mbs:.1f} | {direct_rtt:.2f} |",
        f"| through vmdeck's proxy | {proxy_mbs:.1f} | {proxy_rtt:.2f} |",
        "", f"Proxy throughput = **{100 * proxy_mbs / direct_mbs:.0f}%** of direct (target: at least 90%); "
        f"added latency {proxy_rtt - direct_rtt:+.2f} ms per round trip.",
    ])


LOAD = ""

if __name__ == "__main__":
    main()

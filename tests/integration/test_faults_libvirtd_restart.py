"""libvirtd restarted 20 times under a running `vmdeck serve` (a libvirtd of the test's own, in its own
namespaces): the VM keeps running in the same QEMU process, the API answers 503 "host unavailable"
while libvirtd is away (never a 500, never a hang: every call is bounded), and it recovers by itself,
the event stream included."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faults_support import PREFIX, Serve, scratch_dir
from nshosts import NamespaceHost, start_hosts, stop_hosts
from websockets.sync.client import connect as ws_connect

from vmdeck.host.connection import Host, connect
from vmdeck.paths import data_dir as default_data_dir
from vmdeck.storage.pool import ensure_pool

RESTARTS = 20
CALL_TIMEOUT = 20.0  # any API call slower than this counts as a hang


@pytest.fixture(scope="module")
def private(host: Host) -> Iterator[NamespaceHost]:
    """A libvirtd of the test's own (tests/integration/nshosts.py): the one this test restarts."""
    (libvirtd,) = start_hosts(host, 1)
    try:
        # vmdeck's pool on that host, in the folder its mount namespace has of its own.
        with connect(libvirtd.uri) as opened:
            ensure_pool(opened)
        yield libvirtd
    finally:
        stop_hosts([libvirtd])


@pytest.fixture(scope="module")
def serve(private: NamespaceHost) -> Iterator[Serve]:
    data = scratch_dir("vmdeck-test-restart-")
    (data / "images").symlink_to(default_data_dir() / "images")  # the tiny guest, built once per machine
    server = Serve(data, uri=private.uri)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(data, ignore_errors=True)


def _qemu_pid(name: str) -> int | None:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if f"guest={name},".encode() in cmdline:
                return int(proc.name)
    return None


def _wait_event(ws: object, name: str, event: str, timeout: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {event} event for {name}"
        message = json.loads(ws.recv(timeout=left))  # type: ignore[attr-defined]
        if message.get("vm") == name and message.get("event") == event:
            return message


def test_libvirtd_restarts_under_serve(private: NamespaceHost, serve: Serve) -> None:
    name = f"{PREFIX}restart-{uuid.uuid4().hex[:6]}"
    with serve.client(timeout=600) as api:
        made = api.post("/api/vms", json={"name": name, "template": "tiny", "memory_mib": 192, "accel": "tcg"})
        assert made.status_code == 201, made.text
        started = api.post(f"/api/vms/{name}/start", json={"wait": True, "timeout": 600})
        assert started.status_code == 200, started.text
    qemu = _qemu_pid(name)
    assert qemu is not None

    # A second client hammers the API through every restart: each answer is 200 or 503, each in time.
    seen: dict[int, int] = {}
    stop = threading.Event()
    failures: list[str] = []

    def hammer() -> None:
        with serve.client(timeout=CALL_TIMEOUT) as api:
            while not stop.is_set():
                try:
                    reply = api.get(f"/api/vms/{name}")
                except httpx.HTTPError as err:
                    failures.append(f"{type(err).__name__}: {err}")
                    continue
                seen[reply.status_code] = seen.get(reply.status_code, 0) + 1
                if reply.status_code not in (200, 503):
                    failures.append(f"{reply.status_code}: {reply.text}")
                time.sleep(0.05)

    worker = threading.Thread(target=hammer)
    worker.start()
    recoveries: list[float] = []
    raw: list[float] = []
    headers = {"Authorization": f"Bearer {serve.token}"}
    try:
        # max_queue=None: the stream is read only in rounds 0, 10 and 19, and the stats it sends every 2 s
        # would fill the default 16-frame buffer; the client then stops reading the socket, misses the
        # server's pongs and closes the connection on its keepalive timeout (a slow round is enough).
        with ws_connect(f"ws://127.0.0.1:{serve.port}/api/events", additional_headers=headers,
                        max_queue=None) as ws, serve.client(timeout=CALL_TIMEOUT) as api:
            assert json.loads(ws.recv(timeout=30))["type"] == "hello"
            for round_ in range(RESTARTS):
                private.kill(signal.SIGTERM)
                # The server notices once its event thread reads the connection's EOF: a moment, or
                # longer on a loaded machine; until then an answer may still be a 200.
                deadline = time.monotonic() + 60
                while (down := api.get("/api/vms")).status_code == 200:
                    assert time.monotonic() < deadline, "the API still answers 200 60 s after libvirtd went away"
                    time.sleep(0.1)
                assert down.status_code == 503, down.text
                assert down.json()["error"] == "host_unavailable" and "host unavailable" in down.json()["detail"]
                began = time.monotonic()
                private.start()  # relaunched in its namespaces; returns when libvirtd answers (the raw baseline)
                raw.append(time.monotonic() - began)
                while True:
                    reply = api.get("/api/vms")
                    assert reply.status_code in (200, 503), reply.text
                    if reply.status_code == 200:
                        break
                    assert time.monotonic() - began < 120, "the API did not recover"
                    time.sleep(0.1)
                recoveries.append(time.monotonic() - began)
                vms = {vm["name"]: vm for vm in reply.json()}
                assert vms[name]["state"] == "running", vms[name]
                assert _qemu_pid(name) == qemu, "the VM's QEMU process changed"
                if round_ in (0, RESTARTS // 2, RESTARTS - 1):
                    # The event stream came back by itself: a pause and a resume reach the open websocket.
                    deadline = time.monotonic() + 60
                    while api.post(f"/api/vms/{name}/pause").status_code == 503:
                        assert time.monotonic() < deadline
                        time.sleep(0.2)
                    _wait_event(ws, name, "suspended")
                    assert api.post(f"/api/vms/{name}/resume").status_code == 200
                    _wait_event(ws, name, "resumed")
    finally:
        stop.set()
        worker.join(60)
    assert not failures, failures[:5]
    assert seen.get(200) and seen.get(503), seen
    print(f"\nafter relaunching libvirtd: libvirtd answers in mean {sum(raw) / len(raw):.2f} s "
          f"(max {max(raw):.2f}), the API in mean {sum(recoveries) / len(recoveries):.2f} s "
          f"(max {max(recoveries):.2f}) over {len(recoveries)} restarts; hammer saw {seen}")
    with serve.client(timeout=120) as api:
        assert api.delete(f"/api/vms/{name}", params={"force": True}).status_code == 200

"""The CLI's hand-off client against a real Unix socket served by a thread with canned HTTP answers.

What a command does with each kind of answer: use the JSON, fall back in-process (None), or fail with
the exit code the error would have had in-process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmdeck.cli.handoff import LocalServer, local_server
from vmdeck.errors import Conflict, HostError, InvalidInput, NotFound
from vmdeck.local_socket import CONTEXT_HEADER, context, socket_path


class CannedServer:
    """Accepts connections on `path` and answers each with the next canned response; keeps the requests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.answers: list[bytes] = []
        self.requests: list[bytes] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                answer = self.answers.pop(0)
                if answer:
                    conn.sendall(answer)

    def close(self) -> None:
        self.listener.close()


def response(status: int, body: bytes) -> bytes:
    return f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body


@pytest.fixture
def canned(tmp_path: Path) -> Iterator[CannedServer]:
    server = CannedServer(tmp_path / "vmdeck.sock")
    yield server
    server.close()


def error(kind: str, detail: str) -> bytes:
    return json.dumps({"error": kind, "kind": kind, "detail": detail, "field": None}).encode()


def test_json_answers_of_any_size_and_the_request_carries_the_context(canned: CannedServer) -> None:
    client = LocalServer(canned.path, None)
    vms = [{"name": "a" * 100_000, "state": "running"}]  # more than one recv() of the answer
    canned.answers += [response(200, json.dumps(vms).encode()), response(201, json.dumps(vms).encode())]
    assert client.call("GET", "/api/vms") == vms
    assert client.call("POST", "/api/vms", {"name": "x"}) == vms
    first, second = (r.decode() for r in canned.requests)
    assert first.startswith("GET /api/vms HTTP/1.1\r\n")
    assert f"{CONTEXT_HEADER}: {context(None)}\r\n" in first
    assert second.endswith('{"name": "x"}')


@pytest.mark.parametrize(("status", "kind", "expected"), [
    (422, "invalid_input", InvalidInput), (404, "not_found", NotFound), (409, "wrong_state", Conflict),
    (503, "host_unavailable", HostError)])
def test_an_error_answer_is_the_error_of_its_status(canned: CannedServer, status: int, kind: str,
                                                    expected: type[Exception]) -> None:
    canned.answers.append(response(status, error(kind, "what went wrong")))
    with pytest.raises(expected, match="^what went wrong$") as raised:
        LocalServer(canned.path, None).call("POST", "/api/vms/a/start", {})
    assert raised.value.exit_code == {422: 2, 404: 3, 409: 4, 503: 5}[status]  # type: ignore[attr-defined]


def test_a_declined_hand_off_or_a_dead_server_means_run_in_process(canned: CannedServer, tmp_path: Path) -> None:
    canned.answers.append(response(412, error("handoff_declined", "other settings")))
    assert LocalServer(canned.path, None).call("GET", "/api/vms") is None
    # A socket file nobody listens on: the server was killed without removing it.
    stale = tmp_path / "stale.sock"
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(stale))
    left.close()
    assert LocalServer(stale, None).call("GET", "/api/vms") is None


def test_a_server_that_closes_or_does_not_answer_fails_the_command(canned: CannedServer) -> None:
    canned.answers.append(b"")  # accepts, reads the request, closes without a word
    with pytest.raises(HostError, match="closed the connection"):
        LocalServer(canned.path, None).call("GET", "/api/vms")
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = canned.path.with_name("silent.sock")
    silent.bind(str(path))
    silent.listen(1)  # listens, never accepts: the request waits in the backlog
    try:
        with pytest.raises(HostError, match="did not answer within 0.3 s"):
            LocalServer(path, None).call("GET", "/api/vms", timeout=0.3)
    finally:
        silent.close()


def test_the_socket_is_found_beside_the_database_and_can_be_turned_off(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "web" / "vmdeck.sqlite"
    db.parent.mkdir()
    monkeypatch.setenv("VMDECK_DB", str(db))
    assert socket_path(db) == tmp_path / "web" / "vmdeck.sock"
    assert local_server(None) is None  # no socket file: no server
    server = CannedServer(socket_path(db))
    try:
        found = local_server("qemu:///system")
        assert found is not None and found.path == socket_path(db) and found.uri == "qemu:///system"
        monkeypatch.setenv("VMDECK_LOCAL_SOCKET", "off")
        assert local_server(None) is None
    finally:
        server.close()


def test_the_context_differs_with_each_setting_that_changes_what_a_command_does(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VMDECK_URI", raising=False)
    base = context(None)
    assert context("qemu:///system") != base
    for variable in ("VMDECK_URI", "VMDECK_CONFIG_DIR", "VMDECK_DATA_DIR", "VMDECK_POOL"):
        with monkeypatch.context() as changed:
            changed.setenv(variable, str(tmp_path / "elsewhere"))
            assert context(None) != base, variable
    bytes.fromhex(base)  # sent as hex: any path fits in a header


LIST_PROBE = """
import sys
from vmdeck.cli.main import main
sys.argv = ["vmdeck", "list"]
main()
print("IMPORTED=" + ",".join(sorted(m for m in ("libvirt", "sqlite3", "vmdeck.host.connection") if m in sys.modules)),
      file=sys.stderr)
"""


def test_a_handed_off_list_prints_the_table_without_importing_libvirt(tmp_path: Path) -> None:
    db = tmp_path / "web" / "vmdeck.sqlite"
    db.parent.mkdir()
    server = CannedServer(socket_path(db))
    vms = [{"name": "web1", "state": "running", "vcpus": 2, "memory_mib": 512, "persistent": True,
            "cpu_time_ns": 1, "rss_kib": None, "allowed_actions": [], "project": "default", "host": "local"}]
    server.answers.append(response(200, json.dumps(vms).encode()))
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("VMDECK_URI", "VMDECK_LOCAL_SOCKET", "NO_COLOR")}
        done = subprocess.run([sys.executable, "-c", LIST_PROBE], capture_output=True, text=True, timeout=60,
                              env={**env, "VMDECK_DB": str(db)})
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split() == ["web1", "running", "2", "512", "MiB", "default", "local"]
    assert "IMPORTED=\n" in done.stderr  # the server did the libvirt work; no registry read either

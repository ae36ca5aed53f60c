"""A real `vmdeck serve` (test driver, loopback) against memory and connection exhaustion, over raw
sockets: a huge body is refused without being read, silent, half-sent and oversized requests are
closed by the server, and one address cannot hold more than its share of connections."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from webapi_helpers import ADMIN_PASSWORD

from serving import free_port, wait_for_serve
from vmdeck.api.connlimits import HEADER_TIMEOUT_S, MAX_PER_CLIENT

# Generous: the server's own deadline plus a loaded machine's delays. The tests wait for the close itself.
CLOSE_WITHIN_S = HEADER_TIMEOUT_S + 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(port, pid) of one `vmdeck serve` for the module."""
    tmp = tmp_path_factory.mktemp("serve-limits")
    port = free_port()
    env = {**os.environ, "VMDECK_DATA_DIR": str(tmp), "VMDECK_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "VMDECK_URI": "test:///default"}
    log = tmp / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "vmdeck.cli.main", "serve", "--port", str(port),
                                    "--db", str(tmp / "db.sqlite")], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_serve(f"http://127.0.0.1:{port}", process, log)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(30)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=CLOSE_WITHIN_S)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_declared_huge_body_is_refused_unread(server: tuple[int, int]) -> None:
    port, _pid = server
    with _connect(port) as sock:
        sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 314572800\r\n\r\n{\"username\": \"")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"too_large"' in answer


def test_a_streamed_body_past_its_cap_is_refused_without_growing_the_server(server: tuple[int, int]) -> None:
    port, pid = server
    before = _rss_kib(pid)
    sent = 0
    with _connect(port) as sock:
        sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        # Up to 64 MiB, until the server has answered and stopped reading.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 64 * 2**20:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert _rss_kib(pid) - before < 32 * 1024, (before, _rss_kib(pid))  # not the body's size


def test_silent_and_trickling_connections_are_closed(server: tuple[int, int]) -> None:
    port, _pid = server
    with _connect(port) as silent, _connect(port) as trickle:
        trickle.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        closed = False
        # One header byte a second, for ever: the server must end it (and the silent one meanwhile).
        while time.monotonic() - started < CLOSE_WITHIN_S:
            try:
                trickle.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            trickle.settimeout(1)
            try:
                if trickle.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed, "the server kept a trickling request open"
        assert _answer(silent) == b""  # closed by the server, nothing said
    assert time.monotonic() - started < CLOSE_WITHIN_S


def test_oversized_headers_are_refused(server: tuple[int, int]) -> None:
    port, _pid = server
    with _connect(port) as sock:
        sock.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for i in range(200):
                sock.sendall(b"X-Pad-%d: %s\r\n" % (i, b"y" * 1000))
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_one_address_holds_a_bounded_number_of_connections(server: tuple[int, int]) -> None:
    port, _pid = server
    held = [_connect(port) for _ in range(MAX_PER_CLIENT)]
    try:
        with _connect(port) as extra:
            extra.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert _answer(extra) == b""  # closed unanswered
    finally:
        for sock in held:
            sock.close()
    # Once they are gone, the address is served again.
    deadline = time.monotonic() + CLOSE_WITHIN_S
    while True:
        with _connect(port) as again:
            again.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = _answer(again)
        if answer.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]

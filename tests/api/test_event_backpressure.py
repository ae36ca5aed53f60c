"""A browser that stops reading costs the server a bounded amount: its event queue and its serial console.

Sizes are counted (messages and bytes waiting), never timed. vmdeck.api.events.fanout says what is
dropped for the event stream (stats: all but the newest; the rest: the backlog, for one "re-read"
message); vmdeck.api.console.SerialBuffer lets a console browser go once it is too far behind.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient

from serving import free_port
from vmdeck.api.console import SerialBuffer
from vmdeck.api.events import EventHub
from vmdeck.api.events.fanout import ClientQueue, Subscribers
from vmdeck.api.events.messages import HostSample, Message, Outgoing, StatsSample, VmSample

LIMIT = 64


def _stats(at: float) -> StatsSample:
    return StatsSample(at=at, vms={"vm": VmSample(1.0, 2.0, 3.0, ())}, host=HostSample(None, None, None),
                       projects={"vm": None})


def _settle(loop: asyncio.AbstractEventLoop) -> None:
    """Wait until `loop` ran every callback scheduled on it so far (they run in order)."""
    done = threading.Event()
    loop.call_soon_threadsafe(done.set)
    assert done.wait(60)


def test_a_queue_nobody_reads_keeps_its_bound_and_the_newest_sample() -> None:
    async def main() -> tuple[ClientQueue, int, list[Outgoing]]:
        subscribers = Subscribers(limit=LIMIT)
        idle = subscribers.add()
        loop = asyncio.get_running_loop()

        def worker() -> None:  # as libvirt's event worker and the sampler do: from another thread
            for i in range(20_000):
                subscribers.publish({"type": "state", "vm": "vm", "event": "started", "n": i})
                if i % 50 == 0:
                    subscribers.publish(_stats(float(i)))

        thread = threading.Thread(target=worker)
        thread.start()
        peak = 0
        while thread.is_alive():
            peak = max(peak, len(idle))
            await asyncio.sleep(0)
        thread.join()
        settled = asyncio.Event()
        loop.call_soon_threadsafe(settled.set)
        await settled.wait()
        peak = max(peak, len(idle))
        left = [await idle.get() for _ in range(len(idle))]
        return idle, peak, left

    idle, peak, left = asyncio.run(main())
    assert peak <= LIMIT + 1 and idle.overflows > 100
    # A reader catching up learns it missed messages (and re-reads), then gets the newest ones, the last
    # one sent included, and a single sample: the newest.
    messages = [m for m in left if isinstance(m, dict)]
    assert messages[0] == {"type": "inventory", "reason": "overflow"} and messages[-1]["n"] == 19_999
    samples = [m for m in left if isinstance(m, StatsSample)]
    assert len(samples) == 1 and samples[0].at == 19_950.0


@pytest.fixture
def served(client: TestClient) -> Iterator[tuple[int, str]]:
    """(port, admin bearer token) of the app under uvicorn in this process (its hub runs already)."""
    token = client.post("/api/auth/tokens", json={"name": "stream"}).json()["token"]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield port, token
    server.should_exit = True
    thread.join(timeout=30)


def _never_reading_stream(port: int, token: str) -> socket.socket:
    """/api/events opened over a socket that, after the handshake, reads nothing ever again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_a_browser_that_never_reads_does_not_grow_the_server(client: TestClient,
                                                              served: tuple[int, str]) -> None:
    hub: EventHub = client.app.state.ctx.events  # type: ignore[attr-defined]
    before = len(hub.subscribers)
    stalled = _never_reading_stream(*served)
    try:
        deadline = time.monotonic() + 60
        while len(hub.subscribers) == before:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (queue, loop), = [(q, lp) for q, lp in hub.subscribers.clients()]
        # Big messages, until the socket's buffers are full, the server's sends wait, and its queue for
        # this browser overflowed once; then as many again.
        padding = "x" * 16384
        sent, peak = 0, 0
        while queue.overflows == 0:
            assert time.monotonic() < deadline + 60, f"{sent} messages sent, {len(queue)} waiting"
            for _ in range(100):
                hub.publish({"type": "device", "vm": "busy", "pad": padding, "n": sent})
                sent += 1
            _settle(loop)
            peak = max(peak, len(queue))
        for _ in range(sent):
            hub.publish({"type": "device", "vm": "busy", "pad": padding})
        _settle(loop)
        peak = max(peak, len(queue))
        assert peak <= queue.limit + 1, peak
        # Meanwhile a browser that reads gets what is published now: nobody waits for the stalled one.
        with client.websocket_connect("/api/events") as ws:
            assert ws.receive_json()["type"] == "hello"
            mark: Message = {"type": "drain", "host": "local", "line": "after the flood"}
            hub.publish(mark)
            while (message := ws.receive_json())["type"] != "drain":
                pass
            assert message == mark
    finally:
        stalled.close()


def test_serial_output_nobody_reads_is_bounded_and_ends_the_console() -> None:
    async def main() -> tuple[SerialBuffer, int, list[bytes | None]]:
        buffer = SerialBuffer(asyncio.get_running_loop(), limit=64 * 1024)

        def console() -> None:  # libvirt's event thread, pushing a guest's chatty serial line
            for _ in range(10_000):
                buffer.push(b"y" * 1000)

        thread = threading.Thread(target=console)
        thread.start()
        peak = 0
        while thread.is_alive():
            peak = max(peak, buffer.pending)
            await asyncio.sleep(0)
        thread.join()
        taken = []
        while (chunk := await buffer.get()) is not None:
            taken.append(chunk)
        return buffer, max(peak, buffer.pending), taken + [None]

    buffer, peak, taken = asyncio.run(main())
    assert peak <= 64 * 1024 and buffer.overflowed
    # What was queued before the limit is delivered whole, then the end: no garbled middle.
    assert sum(len(c) for c in taken if c) == 64 * 1024 // 1000 * 1000 and taken[-1] is None and buffer.pending == 0

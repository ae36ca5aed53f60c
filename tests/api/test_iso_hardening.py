"""The ISO library under attack by a tenant: no answer tells another project's ISO names, uploads in flight
hold their size against the quota and are bounded per project, and a project's ISO is not world-readable.

The upload tests need requests that really stream (the in-process TestClient reads a body whole before the
app sees it): the same app runs under uvicorn on 127.0.0.1 in a thread, and each upload is a raw socket that
sends its headers and part of its body, then holds.
"""

from __future__ import annotations

import grp
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from tenancy_helpers import make_world

from serving import free_port

ISO = bytes(32769) + b"CD001" + bytes(4096)  # an ISO 9660 volume descriptor at sector 16
MiB = 2**20


def test_delete_and_put_answer_alike_for_another_projects_iso_and_a_free_name(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    beta = world.client("beta-manager")
    assert beta.put("/api/isos/beta-only.iso", params={"project": "beta"}, content=ISO).status_code == 201
    alpha = world.client("alpha-manager")

    def answer(method: str, name: str, body: bytes | None = None) -> tuple[int, str]:
        reply = alpha.request(method, f"/api/isos/{name}", params={"project": "alpha"}, content=body)
        return reply.status_code, reply.text.replace(name, "NAME")

    taken, free = "beta-only.iso", "nobody-uses.iso"
    assert answer("DELETE", taken) == answer("DELETE", free)
    assert answer("DELETE", free)[0] == 404
    not_an_iso = b"not an iso at all"
    assert answer("PUT", taken, not_an_iso) == answer("PUT", free, not_an_iso)
    assert answer("PUT", free, not_an_iso)[0] == 422
    assert beta.get("/api/isos").json()[0]["name"] == taken  # still there
    # A shared ISO is in everybody's list: refusing to delete it (no role) tells nothing new.
    assert client.put("/api/isos/shared.iso", content=ISO).status_code == 201
    assert alpha.delete("/api/isos/shared.iso").status_code == 403


def test_a_projects_iso_is_readable_by_qemus_group_only(client: TestClient, _data_dir: Path) -> None:
    make_world(client.app, client)  # type: ignore[arg-type]
    assert client.put("/api/isos/private.iso", params={"project": "alpha"}, content=ISO).status_code == 201
    st = (_data_dir / "isos" / "private.iso").stat()
    assert st.st_mode & 0o777 == 0o640 and st.st_gid == grp.getgrnam("kvm").gr_gid  # libvirt-qemu's group


# ------------------------------------------------------------------ uploads in flight, over a real socket


@pytest.fixture
def served(client: TestClient) -> Iterator[tuple[int, str]]:
    """(port, admin bearer token) of the app under uvicorn, in this process."""
    token = client.post("/api/auth/tokens", json={"name": "uploads"}).json()["token"]
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


class Upload:
    """PUT /api/isos/NAME that declares `size` bytes, sends `first` of them, and holds the rest back."""

    def __init__(self, port: int, token: str, name: str, project: str, size: int, first: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(f"PUT /api/isos/{name}?project={project} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
                          f"Content-Length: {size}\r\n\r\n".encode() + first)

    def answer(self, timeout: float = 30) -> tuple[int, dict[str, object]]:
        self.sock.settimeout(timeout)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), json.loads(body or b"{}")

    def drop(self) -> None:
        self.sock.close()


def _length(data: bytes) -> int:
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    return next((int(line.split(":")[1]) for line in head.split("\r\n") if line.startswith("content-length:")), 0)


def _iso_used(client: TestClient, project: str) -> float:
    return float(client.get(f"/api/projects/{project}").json()["quota"]["iso_gib"]["used"])


def test_an_upload_in_flight_holds_its_size_against_the_quota(served: tuple[int, str], client: TestClient) -> None:
    port, token = served
    assert client.post("/api/projects", json={"name": "alpha", "quota": {"iso_gib": 1}}).status_code == 201
    first = Upload(port, token, "first.iso", "alpha", 700 * MiB, ISO)
    try:
        def held() -> bool:
            return abs(_iso_used(client, "alpha") - 700 / 1024) < 1e-3
        deadline = time.monotonic() + 60
        while not held() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held(), _iso_used(client, "alpha")  # the project's use shows the upload while it streams
        second = Upload(port, token, "second.iso", "alpha", 700 * MiB, ISO)
        status, body = second.answer()  # at once: refused before its body is read
        assert status == 413 and "ISO quota" in str(body["detail"]), body
        second.drop()
    finally:
        first.drop()
    deadline = time.monotonic() + 60
    while _iso_used(client, "alpha") != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _iso_used(client, "alpha") == 0  # the dropped upload let go of its room
    small = Upload(port, token, "small.iso", "alpha", len(ISO), ISO)
    assert small.answer()[0] == 201


def test_a_project_without_an_iso_limit_has_two_uploads_in_flight_at_most(served: tuple[int, str],
                                                                           client: TestClient) -> None:
    port, token = served
    assert client.post("/api/projects", json={"name": "beta", "quota": {}}).status_code == 201
    held = [Upload(port, token, f"held{i}.iso", "beta", 10 * MiB, ISO) for i in range(2)]
    try:
        deadline = time.monotonic() + 60  # both streaming: each holds its 10 MiB (no limit, still counted)
        while abs(_iso_used(client, "beta") - 20 / 1024) > 1e-3 and time.monotonic() < deadline:
            time.sleep(0.05)
        third = Upload(port, token, "third.iso", "beta", 10 * MiB, ISO)
        status, body = third.answer()  # at once: refused before its body is read
        third.drop()
        assert status == 429 and "2 ISO uploads of project beta are in progress" in str(body["detail"]), body
    finally:
        for upload in held:
            upload.drop()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        again = Upload(port, token, "after.iso", "beta", len(ISO), ISO)
        status, _ = again.answer()
        if status != 429:
            break
        time.sleep(0.1)
    assert status == 201  # the dropped uploads ended: the project may upload again

"""The task list's API: creates and uploads recorded with their outcome, a member sees only their projects'
tasks (another's answers 404), filters and paging, a failure's error line, the push on the event stream, and
a dead server's tasks failed when the next one starts."""

from __future__ import annotations

import subprocess
import sys
import time

from fastapi.testclient import TestClient
from tenancy_helpers import make_world
from webapi_helpers import sign_in

from vmdeck.store.db import TaskRow, open_database
from vmdeck.store.lease import owner


def _next_task(ws, limit: int = 60) -> dict:  # type: ignore[no-untyped-def]
    for _ in range(limit):
        message = ws.receive_json()
        if message["type"] == "task":
            return message
    raise AssertionError(f"no task message in {limit}")


def test_creates_are_tasks_seen_by_their_projects_members_only(client: TestClient) -> None:
    world = make_world(client.app, client)  # type: ignore[arg-type]
    everything = client.get("/api/tasks").json()
    creates = {t["target"]: t for t in everything if t["kind"] == "vm.create"}
    assert set(creates) == {"a1", "b1"}
    a1 = creates["a1"]
    assert (a1["state"], a1["user"], a1["origin"], a1["project"], a1["result"]) == (
        "done", "admin", "api", "alpha", "created a1")
    assert a1["ended_at"] is not None and a1["duration_s"] >= 0

    viewer = world.client("alpha-viewer")
    assert [t["target"] for t in viewer.get("/api/tasks").json()] == ["a1"]
    assert viewer.get(f"/api/tasks/{creates['b1']['id']}").status_code == 404  # as a task that does not exist
    assert viewer.get("/api/tasks/999999").status_code == 404
    shown = viewer.get(f"/api/tasks/{a1['id']}").json()
    assert any("volume for vda" in line for line in shown["log"]), shown["log"]

    reply = client.post("/api/vms", json={"name": "a2", "template": "q35-virtio", "project": "alpha"})
    assert reply.status_code == 201, reply.text
    assert [t["target"] for t in viewer.get("/api/tasks", params={"vm": "a1"}).json()] == ["a1"]
    assert [t["target"] for t in viewer.get("/api/tasks").json()] == ["a2", "a1"]
    assert client.get("/api/tasks", params={"state": "failed"}).json() == []
    page = client.get("/api/tasks", params={"limit": 1}).json()
    older = client.get("/api/tasks", params={"before_id": page[0]["id"]}).json()
    assert [t["id"] for t in page + older] == [t["id"] for t in client.get("/api/tasks").json()]
    assert client.get("/api/tasks", params={"state": "sleeping"}).status_code == 422

    # A start that waits for the guest is a task; the test driver's guest never answers: it fails, saying so.
    waited = client.post("/api/vms/a2/start", json={"wait": True, "timeout": 1})
    assert waited.status_code >= 400
    [start] = viewer.get("/api/tasks", params={"vm": "a2", "state": "failed"}).json()
    assert (start["kind"], start["result"]) == ("vm.start", waited.json()["detail"])
    assert client.post("/api/vms/a1/start").status_code == 200  # a plain start is no task
    assert [t["kind"] for t in client.get("/api/tasks", params={"vm": "a1"}).json()] == ["vm.create"]


def test_a_failed_create_shows_its_error_and_the_stream_pushes_tasks(client: TestClient) -> None:
    assert client.post("/api/projects", json={"name": "tight", "quota": {"vcpus": 1}}).status_code == 201
    with client.websocket_connect("/api/events") as ws:
        assert ws.receive_json()["type"] == "hello"
        refused = client.post("/api/vms", json={"name": "big", "template": "q35-virtio", "vcpus": 2,
                                                "project": "tight"})
        assert refused.status_code == 409
        pushed = _next_task(ws)
        assert (pushed["task"]["target"], pushed["project"]) == ("big", "tight")
        while pushed["task"]["state"] == "running":
            pushed = _next_task(ws)
        assert pushed["task"]["state"] == "failed"
    failed = client.get("/api/tasks", params={"state": "failed"}).json()
    assert [(t["target"], t["kind"]) for t in failed] == [("big", "vm.create")]
    assert "vcpus limit 1" in failed[0]["result"], failed[0]["result"]


def test_an_upload_is_a_task_with_its_bytes(client: TestClient) -> None:
    payload = bytes(32769) + b"CD001" + bytes(4096)  # an ISO 9660 volume descriptor at sector 16
    reply = client.put("/api/isos/tools.iso", content=payload, headers={"content-type": "application/octet-stream"})
    assert reply.status_code == 201, reply.text
    assert client.put("/api/isos/notes.iso", content=b"not an ISO at all").status_code == 422
    uploads = [(t["target"], t["state"], t["done"], t["total"], t["result"]) for t in client.get("/api/tasks").json()]
    assert uploads == [
        ("notes.iso", "failed", 17, 17, "the upload is not an ISO 9660 image (no CD001 volume descriptor at sector 16)"),
        ("tools.iso", "done", len(payload), len(payload), "uploaded tools.iso")]


def test_the_streams_task_messages_name_no_host_folder() -> None:
    from vmdeck.api.tasks import message

    task = {"id": 1, "vm": "web01", "target": "web01", "project": "a", "state": "failed",
            "result": "cannot read /var/lib/vmdeck/pool/web01-vda.qcow2: Permission denied"}
    assert message(task)["task"]["result"] == "cannot read web01-vda.qcow2: Permission denied"


def test_a_dead_servers_tasks_are_failed_when_the_next_one_starts(make_app, db_setting) -> None:  # type: ignore[no-untyped-def]
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    with open_database(db_setting).begin() as s:  # what a server SIGKILLed mid-clone left behind
        s.add(TaskRow(kind="vm.clone", target="web02", vm="web02", project=None, username="admin", origin="api",
                      state="running", updated=time.time(), log="", owner=f"{owner().split(':', 1)[0]}:{gone}:x"))
    with TestClient(make_app()) as client:
        client.headers["X-CSRF-Token"] = sign_in(client)
        [task] = client.get("/api/tasks").json()
        assert (task["target"], task["state"], task["result"]) == ("web02", "failed", "the server stopped")
        assert task["ended_at"] is not None

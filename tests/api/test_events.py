"""The event stream: libvirt's lifecycle events (test driver) reach a websocket client; stats samples too."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect


def _next(ws, kind: str, limit: int = 50) -> dict:  # type: ignore[no-untyped-def]
    for _ in range(limit):
        message = ws.receive_json()
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message in {limit}")


def test_power_changes_arrive_as_events(client: TestClient) -> None:
    with client.websocket_connect("/api/events") as ws:
        assert ws.receive_json() == {"type": "hello", "user": "admin"}
        client.post("/api/vms/busy/poweroff")
        stopped = _next(ws, "state")
        assert (stopped["vm"], stopped["event"], stopped["state"]) == ("busy", "stopped", "shut off")
        # What the pages enable comes with the state (vmdeck.vm.state.capabilities): no page keeps state names.
        assert stopped["can"]["console"] is False and stopped["allowed_actions"] == ["start", "delete"]
        client.post("/api/vms/busy/start")
        started = _next(ws, "state")
        assert (started["vm"], started["state"], started["can"]["console"]) == ("busy", "running", True)
        client.post("/api/vms", json={"name": "fresh", "template": "q35-virtio"})
        defined = _next(ws, "inventory")
        assert (defined["vm"], defined["event"]) == ("fresh", "defined")


def test_stats_samples_are_pushed(client: TestClient) -> None:
    with client.websocket_connect("/api/events") as ws:
        first = _next(ws, "stats")
        # The test driver reports no CPU time or RSS: the sample names the VM with empty values;
        # "busy" has no QEMU process on this machine, so no uptime (blank, not guessed).
        assert set(first["vms"]["busy"]) == {"cpu_pct", "rss_mib", "uptime_s", "addresses"}
        assert first["vms"]["busy"]["uptime_s"] is None
        assert set(first["host"]) == {"cpu_pct", "memory_used_mib", "memory_total_mib"}


def test_event_stream_needs_a_session_and_our_origin(anon: TestClient, client: TestClient) -> None:
    with TestClient(client.app) as stranger:
        with pytest.raises(WebSocketDisconnect) as refused, stranger.websocket_connect("/api/events"):
            pass
        assert refused.value.code == 1008
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(
            "/api/events", headers={"origin": "http://evil.example"}):
        pass


def test_a_members_stream_carries_only_their_projects_vms(client: TestClient) -> None:
    from tenancy_helpers import make_world

    world = make_world(client.app, client)  # type: ignore[arg-type]
    viewer = world.client("alpha-viewer")
    with viewer.websocket_connect("/api/events") as ws:
        assert ws.receive_json()["user"] == "alpha-viewer"
        # b1 (beta) starts first, then a1 (alpha): the first state event this viewer sees must be a1's.
        assert client.post("/api/vms/b1/start").status_code == 200
        assert client.post("/api/vms/busy/poweroff").status_code == 200
        assert client.post("/api/vms/a1/start").status_code == 200
        started = _next(ws, "state")
        assert (started["vm"], started["project"]) == ("a1", "alpha")
        stats = _next(ws, "stats")
        assert set(stats["vms"]) == {"a1"} and "_projects" not in stats

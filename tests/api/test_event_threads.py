"""libvirt's event thread makes no call to libvirt: the callbacks queue a record, a worker asks libvirt.

Every method of libvirt's own classes (virDomain, virConnect) is wrapped to note the thread it
runs on; then real events of libvirt's test driver reach the websocket. libvirt delivers them on
its event thread ("libvirt-events", vmdeck.host.libvirt_api.ensure_event_loop): the only method
allowed there is virDomain.name, which the binding answers from the handle it was given (the
wrapper vmdeck.host.libvirt_api.Domain reads it, no message to libvirtd).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator

import libvirt
import pytest
from fastapi.testclient import TestClient

EVENT_THREAD = "libvirt-events"
LOCAL_TO_THE_BINDING = {"virDomain.name"}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(thread name, "class.method") of every libvirt method called while the test runs."""
    seen: list[tuple[str, str]] = []

    def recorded(label: str, method: Callable[..., object]) -> Callable[..., object]:
        @functools.wraps(method)
        def call(*args: object, **kwargs: object) -> object:
            seen.append((threading.current_thread().name, label))
            return method(*args, **kwargs)
        return call

    for cls in (libvirt.virDomain, libvirt.virConnect):
        for attr, method in list(vars(cls).items()):
            if callable(method) and not attr.startswith("_"):
                monkeypatch.setattr(cls, attr, recorded(f"{cls.__name__}.{attr}", method))
    yield seen


def _next_state(ws, vm: str, state: str) -> dict:  # type: ignore[no-untyped-def]
    for _ in range(100):
        message = ws.receive_json()
        if message["type"] == "state" and message["vm"] == vm and message["state"] == state:
            return message  # type: ignore[no-any-return]
    raise AssertionError(f"no {state} event of {vm}")


def test_no_libvirt_call_on_libvirts_event_thread(client: TestClient, calls: list[tuple[str, str]]) -> None:
    with client.websocket_connect("/api/events") as ws:
        assert ws.receive_json()["type"] == "hello"
        for _ in range(3):
            assert client.post("/api/vms/busy/poweroff").status_code == 200
            stopped = _next_state(ws, "busy", "shut off")
            assert client.post("/api/vms/busy/start").status_code == 200
            _next_state(ws, "busy", "running")
        assert client.post("/api/vms/busy/pause").status_code == 200
        paused = _next_state(ws, "busy", "paused")
    # The messages still say what needed libvirt: the VM's project (none: the test driver's VM has no
    # vmdeck metadata), asked of its metadata ...
    assert "project" in stopped and paused["allowed_actions"][0] == "poweroff"
    # ... not on libvirt's thread (which did deliver the events: the binding's name() ran there) ...
    on_event_thread = {label for thread, label in calls if thread == EVENT_THREAD}
    assert on_event_thread == LOCAL_TO_THE_BINDING, on_event_thread
    # ... but on the worker's.
    assert ("vmdeck-events-worker", "virDomain.metadata") in calls

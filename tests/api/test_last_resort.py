"""An exception nobody planned for (a bug) becomes JSON 500 {"kind": "internal"}: no traceback to the
client, the whole traceback in the server's log."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from webapi_helpers import AppFactory, sign_in

from vmdeck.api.inventory import Inventory


def test_unexpected_exception_is_json_500_and_logged(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    async def broken(_inventory: object) -> bytes:
        raise KeyError("secret-internal-detail")

    # GET /api/vms answers from the server's inventory: the bug is planted on its request path.
    monkeypatch.setattr(Inventory, "list_json", broken)
    # raise_server_exceptions=False: see what a real client sees, not the exception the test client re-raises.
    with TestClient(make_app(), raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        client.headers["X-CSRF-Token"] = sign_in(client)
        reply = client.get("/api/vms")
    assert reply.status_code == 500
    body = reply.json()
    assert body["kind"] == "internal" and body["error"] == "internal"
    assert body["detail"] == "unexpected error: KeyError"
    assert "Traceback" not in reply.text and "secret-internal-detail" not in reply.text
    logged = "\n".join(r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
                       for r in caplog.records)
    assert "GET /api/vms" in logged and "secret-internal-detail" in logged

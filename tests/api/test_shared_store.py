"""Two servers on one database (in-process apps on the session's PostgreSQL, and on one SQLite file): a
sign-in on one is good on the other, and a console ticket one issues is spent on whichever the browser's
websocket reaches, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from webapi_helpers import ADMIN_PASSWORD, settings_for, sign_in

from pg_support import both_backends  # noqa: F401 (SQLite and PostgreSQL)
from vmdeck.api import create_app
from vmdeck.api.errors import Forbidden
from vmdeck.host.connection import Host


def test_sessions_and_console_tickets_work_on_either_server(tmp_path: Path, test_host: Host,
                                                            db_setting: Path | str) -> None:
    def app() -> TestClient:
        settings = settings_for(db_setting, tmp_path, admin_password=ADMIN_PASSWORD, events=False,
                                allowed_hosts=("testserver",))
        return TestClient(create_app(settings, host=test_host))

    with app() as one, app() as other:
        csrf = sign_in(one)
        other.cookies = one.cookies
        assert other.get("/api/auth/me").json()["username"] == "admin"
        reply = other.post("/api/vms/busy/console/ticket", json={"kind": "vnc"}, headers={"X-CSRF-Token": csrf})
        assert reply.status_code == 200, reply.text
        ticket = reply.json()["ticket"]
        user_id = other.app.state.ctx.accounts.from_session(one.cookies["vmdeck_session"]).user_id  # type: ignore[attr-defined]
        # Issued by `other`, spent on `one` (the proxy's check), and gone for both after that.
        spent = one.app.state.ctx.tickets.redeem(ticket, user_id, "busy", "vnc")  # type: ignore[attr-defined]
        assert (spent.vm, spent.kind, spent.user_id) == ("busy", "vnc", user_id)
        for server in (one, other):
            with pytest.raises(Forbidden, match="unknown or already used"):
                server.app.state.ctx.tickets.redeem(ticket, user_id, "busy", "vnc")  # type: ignore[attr-defined]

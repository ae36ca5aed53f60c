"""What every request of one `vmdeck serve` shares: settings, accounts, the libvirt host, tickets, events."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request

from vmdeck.api.accounts import Accounts
from vmdeck.api.settings import Settings
from vmdeck.api.tickets import TicketBook
from vmdeck.host.connection import Host, connect

__all__ = ["HostHandle", "AppContext", "app_context", "request_host"]


class HostHandle:
    """One libvirt connection shared by all request threads (libvirt connections are thread-safe),
    reopened when libvirtd went away and came back."""

    def __init__(self, uri: str | None, opened: Host | None = None) -> None:
        self.uri = uri
        self._host: Host | None = opened
        self._lock = threading.Lock()

    def get(self) -> Host:
        with self._lock:
            if self._host is not None:
                if not self._host.conn.is_alive():
                    self._host.close()
                    self._host = None
            if self._host is None:
                self._host = connect(self.uri)
                # Keepalive: a dead libvirtd is noticed within seconds instead of at the next call.
                self._host.conn.set_keepalive(5, 3)
            return self._host

    def close(self) -> None:
        with self._lock:
            if self._host is not None:
                self._host.close()
                self._host = None


@dataclass
class AppContext:
    settings: Settings
    accounts: Accounts
    host: HostHandle
    tickets: TicketBook
    events: object | None = None  # vmdeck.api.events.EventHub once started
    admin_created: bool = False  # this start created the admin account
    admin_password: str | None = None  # the generated one-time password, for `vmdeck serve` to print
    extra: dict[str, object] = field(default_factory=dict)


def app_context(request: Request) -> AppContext:
    return request.app.state.ctx


def request_host(request: Request) -> Host:
    """Dependency: the libvirt host (HostError -> 503 when libvirtd is down)."""
    return request.app.state.ctx.host.get()

"""What every request of one `vmdeck serve` shares: settings, accounts, the libvirt host, tickets, events."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request

from vmdeck.api.accounts import Accounts
from vmdeck.api.settings import Settings
from vmdeck.api.tickets import TicketBook
from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.resolve import vm_host
from vmdeck.host.connection import Host, connect

__all__ = ["HostHandle", "AppContext", "app_context", "request_host", "vm_host_of", "fleet_of"]


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
    # The registered hosts (None: this server manages the one host of --connect / the test's connection).
    fleet: Fleet | None = None
    admin_created: bool = False  # this start created the admin account
    admin_password: str | None = None  # the generated one-time password, for `vmdeck serve` to print
    extra: dict[str, object] = field(default_factory=dict)


def app_context(request: Request) -> AppContext:
    return request.app.state.ctx


def fleet_of(ctx: AppContext) -> Fleet | None:
    """The fleet when several hosts are registered; None when requests go to the one host (ctx.host)."""
    if ctx.fleet is None:
        return None
    entries = ctx.fleet.entries
    if len(entries) == 1 and entries[0].uri is None:
        return None  # only `local`: the shared connection of before the registry, no deadline machinery
    return ctx.fleet


def vm_host_of(ctx: AppContext, name: str | None, host: str | None = None) -> Host:
    """The host a request is about: VM `name`'s own host (vmdeck.cluster.resolve), or the named `host`."""
    fleet = fleet_of(ctx)
    if fleet is None:
        return ctx.host.get()
    if name is None:
        return fleet.host(host) if host else fleet.host(fleet.entries[0])
    return vm_host(fleet, name, host=host)


def request_host(request: Request) -> Host:
    """Dependency: the libvirt host of the VM in the path ({name}), or `?host=`; HostError -> 503 when down."""
    return vm_host_of(request.app.state.ctx, request.path_params.get("name"), request.query_params.get("host"))

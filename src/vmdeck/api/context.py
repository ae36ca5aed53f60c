"""What every request of one `vmdeck serve` shares: settings, accounts, the libvirt host, tickets, events."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from vmdeck.api.inventory import Inventory
from vmdeck.api.settings import Settings
from vmdeck.api.throttle import LoginThrottle
from vmdeck.api.tickets import TicketBook
from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.resolve import vm_host
from vmdeck.errors import HostError, VmdeckError
from vmdeck.host.connection import Host, connect
from vmdeck.store.accounts import Accounts
from vmdeck.store.auditlog import Audit
from vmdeck.store.tenancy import Tenancy

if TYPE_CHECKING:  # the hub imports this module: only its type here
    from vmdeck.api.events.hub import EventHub

__all__ = ["HostHandle", "AppContext", "app_context", "request_host", "request_inventory", "vm_host_of", "fleet_of",
           "quota_hosts"]


class HostHandle:
    """One libvirt connection shared by all request threads (libvirt connections are thread-safe),
    reopened when libvirtd went away and came back.

    While libvirtd is away every request gets HostError (503) at once: after a failed attempt to
    reconnect, the next one waits a back-off (doubling up to MAX_BACKOFF), and requests in between
    fail fast instead of queueing behind the lock for a connect that cannot succeed yet.
    """

    FIRST_BACKOFF = 0.25
    MAX_BACKOFF = 2.0

    def __init__(self, uri: str | None, opened: Host | None = None) -> None:
        self.uri = uri
        self._host: Host | None = opened
        self._lock = threading.Lock()
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_error: HostError | None = None
        # Called with each newly opened connection, under the lock, before any request uses it:
        # the event hub registers its callbacks there, so no event of the new connection is missed.
        self.on_connect: list[Callable[[Host], None]] = []

    @property
    def connected(self) -> bool:
        """True when the shared connection is open and alive, known without waiting: libvirt tracks
        liveness locally (keepalive), so the event loop may ask this where it must not call get()."""
        host = self._host
        return host is not None and host.conn.is_alive()

    @property
    def known_uri(self) -> str:
        """The URI libvirt reports for the open connection (what messages name), else the configured one."""
        host = self._host
        return host.uri if host is not None else (self.uri or "")

    def get(self) -> Host:
        with self._lock:
            if self._host is not None:
                if not self._host.conn.is_alive():
                    self._host.close()
                    self._host = None
            if self._host is None:
                if self._last_error is not None and time.monotonic() < self._retry_at:
                    raise HostError(f"host unavailable: {self._last_error}")
                try:
                    self._host = connect(self.uri)
                except HostError as err:
                    self._backoff = min(self.MAX_BACKOFF, max(self.FIRST_BACKOFF, self._backoff * 2))
                    self._retry_at = time.monotonic() + self._backoff
                    self._last_error = err
                    raise HostError(f"host unavailable: {err}") from err
                self._backoff, self._last_error = 0.0, None
                # Keepalive: a dead libvirtd is noticed within seconds instead of at the next call.
                self._host.conn.set_keepalive(5, 3)
                for hook in self.on_connect:
                    with contextlib.suppress(VmdeckError):
                        hook(self._host)
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
    inventory: Inventory
    tenancy: Tenancy
    audit: Audit
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    events: EventHub | None = None  # once started (vmdeck.api.app's lifespan)
    # The registered hosts (None: this server manages the one host of --connect / the test's connection).
    fleet: Fleet | None = None
    admin_created: bool = False  # this start created the admin account
    admin_password: str | None = None  # the generated one-time password, for `vmdeck serve` to print
    extra: dict[str, object] = field(default_factory=dict)


def app_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def fleet_of(ctx: AppContext) -> Fleet | None:
    """The fleet when several hosts are registered; None when requests go to the one host (ctx.host)."""
    if ctx.fleet is None:
        return None
    from vmdeck.usecases.topology import only_local

    if only_local(ctx.fleet.entries):
        return None  # only `local`: the shared connection of before the registry, no deadline machinery
    return ctx.fleet


def quota_hosts(ctx: AppContext, host: Host) -> Fleet | Host:
    """Where a project's VMs are counted against its quotas: every registered host, or this server's one host."""
    return fleet_of(ctx) or host


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


def request_inventory(request: Request) -> Inventory:
    """Dependency: the server's VM inventory (memory; see vmdeck.api.inventory). Single-host only: with
    several hosts registered, list and show go to the hosts (vmdeck.cluster)."""
    inventory: Inventory = request.app.state.ctx.inventory
    return inventory

"""Assembles the ASGI app: database, accounts, middleware, routers, pages, static files (api layer)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib import resources

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from vmdeck import __version__
from vmdeck.api import (
    audit,
    auth,
    backups,
    console,
    devices,
    events,
    forward_watch,
    hosts,
    hostview,
    i18n,
    images,
    isos,
    metrics,
    pages,
    projects,
    snapshots,
    ssh_tunnel,
    templates,
    vms,
)
from vmdeck.api import console_link as console_link_api
from vmdeck.api import forwards as forwards_api
from vmdeck.api import host as host_api
from vmdeck.api import imports as imports_api
from vmdeck.api import learn as learn_api
from vmdeck.api import networks as networks_api
from vmdeck.api import storage as storage_api
from vmdeck.api import tasks as tasks_api
from vmdeck.api.context import AppContext, HostHandle
from vmdeck.api.errors import install_error_handlers
from vmdeck.api.hardening import HardeningMiddleware
from vmdeck.api.hostpaths import HostPathsMiddleware
from vmdeck.api.inventory import Inventory, WriteInvalidation
from vmdeck.api.limits import RequestLimits
from vmdeck.api.local_socket import LocalSocketMiddleware
from vmdeck.api.policy import enforce
from vmdeck.api.security import AuthMiddleware
from vmdeck.api.settings import Settings
from vmdeck.api.tickets import TicketBook
from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.registry import Registry
from vmdeck.host.connection import Host
from vmdeck.store.accounts import Accounts, ensure_admin
from vmdeck.store.auditlog import Audit
from vmdeck.store.db import open_database
from vmdeck.store.tenancy import Tenancy

__all__ = ["create_app"]

def create_app(settings: Settings | None = None, *, host: Host | None = None) -> FastAPI:
    """The app for `vmdeck serve`. `host` hands in an already open connection (tests: the test driver)."""
    settings = settings or Settings()
    if settings.events:
        # libvirt needs its event loop registered before the connections that deliver events are opened.
        events.ensure_event_loop()
    db = open_database(settings.location())
    accounts = Accounts(db, settings.session_ttl)
    handle = HostHandle(settings.uri, host)
    ctx = AppContext(settings=settings, accounts=accounts, host=handle, tickets=TicketBook(settings.ticket_ttl, db=db),
                     inventory=Inventory(handle.get, interval=settings.inventory_interval),
                     tenancy=Tenancy(db), audit=Audit(db))
    if settings.uri is None and host is None:
        # The host registry lives in the same database; keepalive needs the event loop (settings.events).
        ctx.fleet = Fleet(registry=Registry(settings.location()), keepalive=settings.events)
    ctx.admin_created, ctx.admin_password = ensure_admin(accounts, settings.admin_password)
    from vmdeck.store.tasks import Tasks

    Tasks(db).fail_orphans()  # tasks a server (or command) of this machine left running when it died

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub = None
        if settings.events:
            # The inventory answers list/show from memory only while events keep it current.
            hub = events.EventHub(ctx.host, settings.stats_interval, ctx.inventory, ctx=ctx)
            hub.start()
            ctx.events = hub
            ctx.inventory.start()
            task_feed = asyncio.get_running_loop().create_task(tasks_api.Feed(hub, Tasks(db)).run())
        feed = metrics.start_feed(ctx)  # one bulk sample per interval for /metrics, history and `vmdeck top`
        forward_watch.start(ctx, hub)  # this machine's port forwards back on its firewall, and after each VM start
        try:
            yield
        finally:
            feed.stop()
            ctx.inventory.stop()
            if hub is not None:
                task_feed.cancel()
                hub.stop()
            ctx.events = None
            if host is None:
                ctx.host.close()
            if ctx.fleet is not None:
                ctx.fleet.close()

    app = FastAPI(
        title="vmdeck",
        version=__version__,
        description="REST API of vmdeck, a virtual machine manager for QEMU/KVM hosts. Every call needs a "
                    "signed-in session (with X-CSRF-Token on changes) or `Authorization: Bearer <API token>`.",
        openapi_url="/api/openapi.json",
        # Swagger UI and ReDoc load their code from a CDN; vmdeck serves nothing from outside.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # Every route, websockets and pages included, passes the one policy check (vmdeck.api.policy).
        # scope="function": its audit line is committed before the answer leaves, not after (FastAPI's
        # default), so a client that saw its change succeed finds it in the audit log, and a server that
        # dies right after answering has not done an unaudited change.
        dependencies=[Depends(enforce, scope="function")],
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    for module in (auth, vms, snapshots, templates, images, host_api, hosts, isos, devices, hostview, console, events,
                   projects, audit, metrics):
        app.include_router(module.router)
    app.include_router(console_link_api.router)
    app.include_router(learn_api.router)
    app.include_router(networks_api.router)
    app.include_router(storage_api.router)
    app.include_router(forwards_api.router)
    app.include_router(backups.router)
    app.include_router(imports_api.router)
    app.include_router(tasks_api.router)
    app.include_router(i18n.router)
    app.include_router(pages.router)
    app.include_router(ssh_tunnel.router)
    app.mount("/static", StaticFiles(directory=str(resources.files("vmdeck.web") / "static")), name="static")
    app.add_middleware(WriteInvalidation, inventory=ctx.inventory)
    app.add_middleware(HostPathsMiddleware)  # inside AuthMiddleware: it knows the caller
    app.add_middleware(RequestLimits)  # after the caller is known: anonymous bodies are refused unread
    app.add_middleware(AuthMiddleware, accounts=accounts, extra_origins=settings.extra_origins)
    if settings.local_socket is not None:
        # Runs before AuthMiddleware: a request on the local socket arrives with its caller already known.
        app.add_middleware(LocalSocketMiddleware, path=settings.local_socket, ctx=ctx)
    # Added last, so it runs first: an unknown Host is refused before anyone is looked up.
    app.add_middleware(HardeningMiddleware, allowed_hosts=settings.allowed_hosts)
    return app

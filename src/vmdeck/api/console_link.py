"""One-time console links: a URL that opens one VM's screen in a browser, once (api layer).

`vmdeck display NAME` against a server (vmdeck.cli.remote_manage) asks for one: a customer's terminal
has no browser session, and their token must not become one. So the link grants no session at all:

- POST /api/vms/{name}/console/link (the console's own rule, operator) answers {"url", "expires_in"};
- GET /console/{link} spends the link (single use, LINK_TTL_S) and answers a page holding a second
  bearer ticket, for seconds, that its script trades for the screen's websocket
  (WS /console-link/{name}/vnc?ticket=...);
- that console then lasts as long as the credential that asked for the link may open it: the same
  watch as every console (vmdeck.api.revocation), re-reading that token or session by reference.

Whoever holds the link sees and drives this one console, once; nothing else of the account.
"""

from __future__ import annotations

from importlib import resources

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from starlette.websockets import WebSocket

from vmdeck import __version__
from vmdeck.api import i18n
from vmdeck.api.console import serve_vnc
from vmdeck.api.context import AppContext, request_host, vm_host_of
from vmdeck.api.errors import Forbidden
from vmdeck.api.policy import POLICY, may
from vmdeck.api.revocation import Watch
from vmdeck.api.security import current_principal, origin_allowed
from vmdeck.errors import InvalidInput, StateError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.store.accounts import Principal, credential_reference
from vmdeck.vm.project import project_of
from vmdeck.vm.state import current_state

__all__ = ["router", "LINK_TTL_S"]

router = APIRouter(tags=["console"])
LINK_TTL_S = 120.0  # long enough to paste the URL into a browser, short enough to be worthless later
_templates = Jinja2Templates(directory=str(resources.files("vmdeck.web") / "templates"))


class LinkReply(BaseModel):
    url: str
    vm: str
    expires_in: float


@router.post("/api/vms/{name}/console/link", response_model=LinkReply)
def console_link(name: str, request: Request, principal: Principal = Depends(current_principal),
                 host: Host = Depends(request_host)) -> LinkReply:
    """A one-time URL of the VM's screen in a browser, for a caller without a browser session (`vmdeck display`
    through a server): it opens this console once, within `expires_in` seconds, and signs nobody in."""
    state = current_state(host.lookup(name))  # NotFound for a VM that does not exist
    if not state.has_console:
        raise StateError(name, state, "running", "open the console of")
    reference = credential_reference(principal)
    if reference is None:
        raise InvalidInput("a console link is asked for with an API token or a signed-in session")
    ctx: AppContext = request.app.state.ctx
    link = ctx.tickets.issue(principal.user_id, name, "link", ttl=LINK_TTL_S, credential=reference)
    return LinkReply(url=f"{str(request.base_url).rstrip('/')}/console/{link.value}", vm=name, expires_in=LINK_TTL_S)


def _page(request: Request, status_code: int, **context: object) -> Response:
    lang = i18n.choose(request)
    response = _templates.TemplateResponse(request, "console_link.html", {
        "lang": lang, "t": i18n.translator(lang), "version": __version__, **context}, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    response.headers["referrer-policy"] = "no-referrer"  # the link's ticket stays out of other sites' logs
    return response


def _still_allowed(ctx: AppContext, reference: str | None, name: str) -> str | None:
    """The VM's project, when the credential that asked for the link may still open its console."""
    principal = ctx.accounts.by_reference(reference) if reference else None
    project = project_of(vm_host_of(ctx, name), name)
    if principal is None or not may(principal, POLICY["vm.console"].need, project):
        raise Forbidden("the account that asked for this link may no longer open this console")
    return project


@router.get("/console/{link}", response_class=HTMLResponse, include_in_schema=False)
async def console_link_page(link: str, request: Request) -> Response:
    """Spends the link; the page's script opens the screen with the short ticket it holds."""
    ctx: AppContext = request.app.state.ctx
    try:
        spent = await anyio.to_thread.run_sync(lambda: ctx.tickets.redeem_bearer(link, "link"))
        await anyio.to_thread.run_sync(lambda: _still_allowed(ctx, spent.credential, spent.vm))
        screen = await anyio.to_thread.run_sync(
            lambda: ctx.tickets.issue(spent.user_id, spent.vm, "vnc-link", credential=spent.credential))
    except VmdeckError as refused:
        return _page(request, refused.http_status, vm=None, refused=refused.message)
    return _page(request, 200, vm=spent.vm, refused=None,
                 path=f"/console-link/{spent.vm}/vnc?ticket={screen.value}")


@router.websocket("/console-link/{name}/vnc")
async def console_link_vnc(websocket: WebSocket, name: str) -> None:
    """The screen of a console link: the page's bearer ticket instead of a session, then the same proxy and
    the same watch as the signed-in console (on the credential that asked for the link)."""
    ctx: AppContext = websocket.app.state.ctx
    headers = {k.lower(): v for k, v in websocket.headers.items()}
    try:
        ticket = await anyio.to_thread.run_sync(
            lambda: ctx.tickets.redeem_bearer(websocket.query_params.get("ticket"), "vnc-link", name))
        if not origin_allowed(headers, websocket.scope, ctx.settings.extra_origins):
            raise Forbidden("console websocket from a foreign Origin")
        project = await anyio.to_thread.run_sync(lambda: _still_allowed(ctx, ticket.credential, name))
    except VmdeckError as refused:
        await websocket.close(code=1008, reason=refused.message[:120])
        return
    need = POLICY["vm.console"].need
    await serve_vnc(websocket, name, Watch(websocket, lambda now: may(now, need, project), ticket.credential))

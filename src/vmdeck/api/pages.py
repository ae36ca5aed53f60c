"""The HTML pages of the web UI (api layer): thin server-rendered shells, filled by the page's JS
through the same REST API and event stream that scripts use.
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from vmdeck import __version__
from vmdeck.api.accounts import Principal

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_templates = Jinja2Templates(directory=str(resources.files("vmdeck.web") / "templates"))


def _page(request: Request, template: str, **context: object) -> Response:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    response = _templates.TemplateResponse(request, template, {
        "user": principal.username, "csrf_token": principal.csrf_token or "", "version": __version__, **context})
    # The pages hold a CSRF token: never cache them, never frame them.
    response.headers["cache-control"] = "no-store"
    response.headers["x-frame-options"] = "DENY"
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:  # noqa: A002
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    return _templates.TemplateResponse(request, "login.html", {"next": target, "version": __version__})


@router.get("/", response_class=HTMLResponse)
def list_page(request: Request) -> Response:
    return _page(request, "list.html", title="Virtual machines")


@router.get("/create", response_class=HTMLResponse)
def create_page(request: Request) -> Response:
    return _page(request, "create.html", title="Create a VM")


@router.get("/vms/{name}", response_class=HTMLResponse)
def vm_page(request: Request, name: str) -> Response:
    return _page(request, "vm.html", title=name, vm=name)


@router.get("/host", response_class=HTMLResponse)
def host_page(request: Request) -> Response:
    return _page(request, "host.html", title="Host")


@router.get("/hosts", response_class=HTMLResponse)
def hosts_page(request: Request) -> Response:
    return _page(request, "hosts.html", title="Hosts")

"""The HTML pages of the web UI (api layer): thin server-rendered shells, filled by the page's JS
through the same REST API and event stream that scripts use.
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from vmdeck import __version__
from vmdeck.api import i18n
from vmdeck.errors import NotFound
from vmdeck.store.accounts import Principal
from vmdeck.store.tenancy import role_rank

__all__ = ["router", "not_found_page", "forbidden_page", "role_flags"]

router = APIRouter(include_in_schema=False)
_templates = Jinja2Templates(directory=str(resources.files("vmdeck.web") / "templates"))


_STATIC = resources.files("vmdeck.web") / "static"


def _page(request: Request, template: str, *, status_code: int = 200, **context: object) -> Response:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    lang = i18n.choose(request)
    # A viewer or operator manages no project: no Create or Audit links (their pages would offer nothing).
    manages = principal.admin or bool(principal.projects("manager"))
    response = _templates.TemplateResponse(request, template, {
        "user": principal.username, "csrf_token": principal.csrf_token or "", "version": __version__,
        "is_admin": principal.admin, "manages": manages, "lang": lang, "t": i18n.translator(lang),
        "languages": {code: i18n.catalog(code)["lang.name"] for code in i18n.LANGUAGES},
        **context}, status_code=status_code)
    # The pages hold a CSRF token: never cache them (framing and scripts: vmdeck.api.hardening's headers).
    response.headers["cache-control"] = "no-store"
    return response


def same_origin_path(target: str) -> str:
    """`target` when it is a path on this server, else "/": browsers read "/\\evil" and "//evil" as
    another host, and a scheme or control characters have no place in a path either."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:  # noqa: A002
    response = _templates.TemplateResponse(request, "login.html", {"next": same_origin_path(next),
                                                                   "version": __version__})
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/", response_class=HTMLResponse)
def list_page(request: Request) -> Response:
    return _page(request, "list.html", title="Virtual machines")


@router.get("/create", response_class=HTMLResponse)
def create_page(request: Request) -> Response:
    return _page(request, "create.html", title="Create a VM")


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request) -> Response:
    return _page(request, "import.html", title="Import a VM")


def role_flags(principal: Principal | None, project: str | None) -> dict[str, bool]:
    """What the page may offer (vmdeck.api.policy's roles): a control the caller cannot use is not drawn."""
    if principal is None:
        return {"can_operate": False, "can_manage": False}
    rank = 4 if principal.admin else role_rank(principal.role_in(project))
    return {"can_operate": rank >= role_rank("operator"), "can_manage": rank >= role_rank("manager")}


@router.get("/vms/{name}", response_class=HTMLResponse)
def vm_page(request: Request, name: str) -> Response:
    principal: Principal | None = getattr(request.state, "principal", None)
    project = None
    if principal is not None:
        try:
            from vmdeck.api.context import vm_host_of
            from vmdeck.vm.project import domain_project

            dom = vm_host_of(request.app.state.ctx, name, request.query_params.get("host")).lookup(name)
            project = domain_project(dom)
        except NotFound:
            return not_found_page(request, f"There is no VM named {name!r} on this host.")
    return _page(request, "vm.html", title=name, vm=name, **role_flags(principal, project))


@router.get("/learn", response_class=HTMLResponse)
def learn_page(request: Request) -> Response:
    """The Learn tour: experiments on one of the caller's VMs (?vm=NAME preselects it)."""
    title = i18n.translator(i18n.choose(request))("learn.title")
    return _page(request, "learn.html", title=title, vm=request.query_params.get("vm", ""))


@router.get("/networks", response_class=HTMLResponse)
def networks_page(request: Request) -> Response:
    """Virtual networks: the caller's projects' and the ones they were allowed (administrators: all)."""
    return _page(request, "networks.html", title=i18n.translator(i18n.choose(request))("networks.title"))


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    return _page(request, "audit.html", title="Audit log")


def not_found_page(request: Request, message: str = "There is no page at this address.") -> Response:
    """The HTML 404 page (an unknown VM, a mistyped address) for browsers; the API answers JSON."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        return HTMLResponse('<!doctype html><title>Not found · vmdeck</title><h1>Not found</h1>'
                            '<p><a href="/login">Sign in</a></p>', status_code=404)
    return _page(request, "404.html", status_code=404, title="Not found", message=message)


# The pages a role may lack, in words (the policy's refusal names the action: "host.view needs admin; ...").
_PAGE_NEEDS = {
    "host.view": "The Host page shows the whole machine's capacity and ISO library: it is for administrators.",
    "host.manage": "The Hosts page registers and drains the machines VMs run on: it is for administrators.",
    "user.manage": "The Users page is for administrators.",
    "project.manage": "Projects and their quotas are managed by administrators.",
}


def forbidden_page(request: Request, refusal: str) -> Response:
    """The HTML 403 page: what the page is for and who may open it, in words, and where to go instead."""
    action = refusal.split(" ", 1)[0]
    message = _PAGE_NEEDS.get(action, "Your account's role does not allow this page.")
    return _page(request, "403.html", status_code=403, title="Not allowed", message=message)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return FileResponse(str(_STATIC / "favicon.svg"), media_type="image/svg+xml",
                        headers={"cache-control": "max-age=86400"})


@router.get("/docs", response_class=HTMLResponse)
def api_docs_page(request: Request) -> Response:
    """The REST API's reference: Swagger UI, served from /static/vendor (never a CDN)."""
    return _page(request, "apidocs.html", title="API reference")


@router.get("/host", response_class=HTMLResponse)
def host_page(request: Request) -> Response:
    return _page(request, "host.html", title="Host")


@router.get("/hosts", response_class=HTMLResponse)
def hosts_page(request: Request) -> Response:
    return _page(request, "hosts.html", title="Hosts")


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    """Your password and API tokens."""
    return _page(request, "account.html", title="Your account")


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    """Accounts and memberships (administrators)."""
    return _page(request, "users.html", title="Users")


@router.get("/projects", response_class=HTMLResponse)
def projects_page(request: Request) -> Response:
    """Projects with their quotas and use (administrators)."""
    return _page(request, "projects.html", title="Projects")

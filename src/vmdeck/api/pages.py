"""The HTML pages of the web UI (api layer): thin server-rendered shells, filled by the page's JS
through the same REST API and event stream that scripts use.
"""

from __future__ import annotations

from html import escape
from importlib import resources
from typing import Any
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


def _page(request: Request, template: str, *, status_code: int = 200, title_key: str = "",
          **context: Any) -> Response:
    """A signed-in page in the caller's language: its title is the catalog's `title_key` (or `title`: a VM's name)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    lang = i18n.choose(request)
    t = i18n.translator(lang)
    if title_key:
        context["title"] = t(title_key)
    # A viewer or operator manages no project: no Create or Audit links (their pages would offer nothing).
    manages = principal.admin or bool(principal.projects("manager"))
    response = _templates.TemplateResponse(request, template, {
        "user": principal.username, "csrf_token": principal.csrf_token or "", "version": __version__,
        "is_admin": principal.admin, "manages": manages, "lang": lang, "t": t, "tv": i18n.marked_translator(lang),
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
    lang = i18n.choose(request)
    response = _templates.TemplateResponse(request, "login.html", {"next": same_origin_path(next),
                                                                   "version": __version__, "lang": lang,
                                                                   "t": i18n.translator(lang)})
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/", response_class=HTMLResponse)
def list_page(request: Request) -> Response:
    return _page(request, "list.html", title_key="list.title")


@router.get("/create", response_class=HTMLResponse)
def create_page(request: Request) -> Response:
    return _page(request, "create.html", title_key="create.title")


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request) -> Response:
    return _page(request, "import.html", title_key="import.title")


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
            return not_found_page(request, "error.no_vm", name=name)
    flags: dict[str, Any] = role_flags(principal, project)
    return _page(request, "vm.html", title=name, vm=name, **flags)


@router.get("/learn", response_class=HTMLResponse)
def learn_page(request: Request) -> Response:
    """The Learn tour: experiments on one of the caller's VMs (?vm=NAME preselects it)."""
    return _page(request, "learn.html", title_key="learn.title", vm=request.query_params.get("vm", ""))


@router.get("/networks", response_class=HTMLResponse)
def networks_page(request: Request) -> Response:
    """Virtual networks: the caller's projects' and the ones they were allowed (administrators: all)."""
    return _page(request, "networks.html", title=i18n.translator(i18n.choose(request))("networks.title"))


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    return _page(request, "audit.html", title_key="audit.title")


def not_found_page(request: Request, message_key: str = "error.no_page", **values: object) -> Response:
    """The HTML 404 page (an unknown VM, a mistyped address) for browsers; the API answers JSON.
    `message_key` is the catalog's message, `values` its {placeholders} (shown as values, not words)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        lang = i18n.choose(request)
        t = i18n.translator(lang)
        return HTMLResponse(f'<!doctype html><html lang="{lang}"><title>{escape(t("error.not_found"))} · vmdeck</title>'
                            f'<h1>{escape(t("error.not_found"))}</h1>'
                            f'<p><a href="/login">{escape(t("login.submit"))}</a></p>', status_code=404)
    return _page(request, "404.html", status_code=404, title_key="error.not_found",
                 message_key=message_key, message_values=values)


# The pages a role may lack, as catalog keys (the policy's refusal names the action: "host.view needs admin; ...").
_PAGE_NEEDS = {
    "host.view": "error.needs.host_view",
    "host.manage": "error.needs.host_manage",
    "user.manage": "error.needs.user_manage",
    "project.manage": "error.needs.project_manage",
}


def forbidden_page(request: Request, refusal: str) -> Response:
    """The HTML 403 page: what the page is for and who may open it, in words, and where to go instead."""
    action = refusal.split(" ", 1)[0]
    return _page(request, "403.html", status_code=403, title_key="error.forbidden.title",
                 message_key=_PAGE_NEEDS.get(action, "error.needs.role"))


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return FileResponse(str(_STATIC / "favicon.svg"), media_type="image/svg+xml",
                        headers={"cache-control": "max-age=86400"})


@router.get("/docs", response_class=HTMLResponse)
def api_docs_page(request: Request) -> Response:
    """The REST API's reference: Swagger UI, served from /static/vendor (never a CDN)."""
    return _page(request, "apidocs.html", title_key="apidocs.title")


@router.get("/host", response_class=HTMLResponse)
def host_page(request: Request) -> Response:
    return _page(request, "host.html", title_key="host.title")


@router.get("/hosts", response_class=HTMLResponse)
def hosts_page(request: Request) -> Response:
    return _page(request, "hosts.html", title_key="hosts.title")


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    """Your password and API tokens."""
    return _page(request, "account.html", title_key="account.title")


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    """Accounts and memberships (administrators)."""
    return _page(request, "users.html", title_key="users.title")


@router.get("/projects", response_class=HTMLResponse)
def projects_page(request: Request) -> Response:
    """Projects with their quotas and use (administrators)."""
    return _page(request, "projects.html", title_key="projects.title")

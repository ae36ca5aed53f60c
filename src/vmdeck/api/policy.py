"""Who may do what: the one policy table, and the one check every route goes through (api layer).

`POLICY` maps each action to the least a caller needs and the routes that perform it:

- "public": anyone (the sign-in page and call);
- "signed-in": any signed-in user; list routes then show only what the caller may see;
- "viewer" < "operator" < "manager": a role in the project the request is about;
- "admin": a host administrator (global; an admin's project-scoped token is not one).

`enforce` is installed as a dependency of the whole app: it finds the route's action
(a route with no entry is refused: a new route must be added here, and
tests/api/test_policy.py fails until it is), works out the project the request is
about (the VM's, from its libvirt metadata; the ISO's; or the one named by the
request), and checks the caller's role there. A VM, ISO or project the caller cannot
see answers exactly as one that does not exist: 404 with the same message. A caller
who can see it but lacks the role gets 403. State-changing requests are written to
the audit log with their outcome.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import WebSocketException
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from vmdeck.api.errors import Forbidden, Unauthorized
from vmdeck.errors import NotFound, VmdeckError
from vmdeck.store.accounts import Principal
from vmdeck.store.tenancy import DEFAULT_PROJECT, role_rank
from vmdeck.vm.project import project_of
from vmdeck.vm.state import POWER_VERBS

__all__ = ["NEEDS", "Rule", "POLICY", "SCOPES", "ROUTE_ACTIONS", "Grant", "enforce", "grant_of", "may", "visible",
           "vm_not_found"]

NEEDS = ("public", "signed-in", "viewer", "operator", "manager", "admin")


@dataclass(frozen=True)
class Rule:
    need: str  # one of NEEDS
    scope: str = "none"  # "vm": the path's {name}; "iso": the path's ISO; "project": the request's project;
    # "backup": the project in the manifest of the path's {backup_id}
    routes: tuple[str, ...] = ()  # "METHOD /path/{template}" ("WS" for websockets)


POLICY: dict[str, Rule] = {
    # --- signing in, one's own account ---------------------------------------------------------------
    "auth.login": Rule("public", routes=("POST /api/auth/login", "GET /login")),
    "auth.self": Rule("signed-in", routes=("POST /api/auth/logout", "GET /api/auth/me", "POST /api/auth/password",
                                           "GET /account")),
    "token.manage": Rule("signed-in", routes=("GET /api/auth/tokens", "POST /api/auth/tokens",
                                              "DELETE /api/auth/tokens/{token_id}")),
    # --- host administration -------------------------------------------------------------------------
    "user.manage": Rule("admin", routes=("POST /api/auth/users", "GET /api/users", "GET /users")),
    "project.manage": Rule("admin", routes=("POST /api/projects", "PATCH /api/projects/{project}",
                                            "DELETE /api/projects/{project}",
                                            "PUT /api/projects/{project}/members/{username}",
                                            "DELETE /api/projects/{project}/members/{username}", "GET /projects")),
    "host.view": Rule("admin", routes=("GET /api/host", "GET /api/hostview", "GET /host")),
    "host.manage": Rule("admin", routes=("GET /api/hosts", "POST /api/hosts", "DELETE /api/hosts/{host}",
                                         "POST /api/hosts/{host}/drain", "POST /api/hosts/{host}/undrain",
                                         "GET /hosts")),
    "vm.migrate": Rule("admin", "vm", routes=("POST /api/vms/{name}/migrate",)),  # moves between the provider's hosts
    "vm.adopt": Rule("admin", "vm", routes=("POST /api/vms/{name}/adopt",)),
    # --- reading -------------------------------------------------------------------------------------
    "template.list": Rule("signed-in", routes=("GET /api/templates", "GET /api/templates/{name}")),
    "image.list": Rule("signed-in", routes=("GET /api/images", "GET /api/images/{name}")),  # the shared library
    "api.docs": Rule("signed-in", routes=("GET /docs",)),  # the REST API's reference page
    "site.icon": Rule("public", routes=("GET /favicon.ico",)),
    "site.words": Rule("public", routes=("GET /i18n/{lang}.json",)),  # the pages' message catalogs
    # A console link's page and screen: the link's own bearer ticket is the credential (vmdeck.api.console_link).
    "console.link": Rule("public", routes=("GET /console/{link}", "WS /console-link/{name}/vnc")),
    "project.list": Rule("signed-in", routes=("GET /api/projects",)),
    "project.show": Rule("viewer", "project", routes=("GET /api/projects/{project}",)),
    "vm.list": Rule("signed-in", routes=("GET /api/vms", "GET /", "WS /api/events")),
    "vm.show": Rule("viewer", "vm", routes=("GET /api/vms/{name}", "GET /api/vms/{name}/devices",
                                            "GET /api/vms/{name}/guest", "GET /vms/{name}",
                                            "GET /api/vms/{name}/snapshots")),
    "vm.storage": Rule("viewer", "vm", routes=("GET /api/vms/{name}/storage",)),  # disk sizes, kept volumes
    "network.page": Rule("signed-in", routes=("GET /networks",)),  # lists only the networks one may see
    "vm.screenshot": Rule("viewer", "vm", routes=("GET /api/vms/{name}/screenshot",)),
    "vm.hostview": Rule("viewer", "vm", routes=("GET /api/vms/{name}/hostview",)),
    # The Learn tour: reading it needs a viewer; each step that acts checks its own role (vmdeck.learn.steps).
    "vm.learn": Rule("viewer", "vm", routes=("GET /api/vms/{name}/learn", "POST /api/vms/{name}/learn/{step_id}")),
    "learn.page": Rule("signed-in", routes=("GET /learn",)),
    # Networks: listed per project; the handler checks the network's project (vmdeck.api.networks): another
    # project's network is 404, a role too low 403, as for VMs.
    "network.use": Rule("signed-in", routes=("GET /api/networks", "GET /api/networks/{network}", "POST /api/networks",
                                             "DELETE /api/networks/{network}",
                                             "POST /api/networks/{network}/reservations")),
    "iso.list": Rule("signed-in", routes=("GET /api/isos",)),
    "task.list": Rule("signed-in", routes=("GET /api/tasks", "GET /api/tasks/{task_id}")),  # one's projects'
    "audit.read": Rule("signed-in", routes=("GET /api/audit", "GET /audit")),  # managers: their projects
    # --- operating -----------------------------------------------------------------------------------
    "vm.power": Rule("operator", "vm", routes=tuple(f"POST /api/vms/{{name}}/{verb}" for verb in POWER_VERBS)),
    "vm.console": Rule("operator", "vm", routes=("POST /api/vms/{name}/console/ticket",
                                                 "POST /api/vms/{name}/console/link",  # a one-time browser URL
                                                 "WS /api/vms/{name}/console/vnc", "WS /api/vms/{name}/console/serial")),
    "vm.ssh": Rule("operator", "vm", routes=("WS /api/vms/{name}/ssh",)),  # the tunnel to its SSH forward
    "vm.keys": Rule("operator", "vm", routes=("POST /api/vms/{name}/keys", "POST /api/vms/{name}/type")),
    "vm.media": Rule("operator", "vm", routes=("POST /api/vms/{name}/media", "DELETE /api/vms/{name}/media")),
    "vm.exec": Rule("operator", "vm", routes=("POST /api/vms/{name}/exec",)),
    # Port forwards (vmdeck.api.forwards): operators add and remove, viewers list.
    "vm.forwards": Rule("operator", "vm", routes=("POST /api/vms/{name}/forwards",
                                                  "DELETE /api/vms/{name}/forwards/{forward_id}")),
    "vm.forwards.list": Rule("viewer", "vm", routes=("GET /api/vms/{name}/forwards",)),
    # --- managing ------------------------------------------------------------------------------------
    "vm.create": Rule("manager", "project", routes=("POST /api/vms",)),
    "vm.create.form": Rule("signed-in", routes=("GET /create",)),  # the form offers the projects you manage
    "vm.delete": Rule("manager", "vm", routes=("DELETE /api/vms/{name}",)),
    "vm.resize": Rule("manager", "vm", routes=("PATCH /api/vms/{name}", "POST /api/vms/{name}/apply-pending")),
    "vm.devices": Rule("manager", "vm", routes=("POST /api/vms/{name}/disks", "DELETE /api/vms/{name}/disks/{target}",
                                                "POST /api/vms/{name}/disks/{target}/resize",
                                                "POST /api/vms/{name}/nics", "DELETE /api/vms/{name}/nics/{mac}",
                                                "POST /api/vms/{name}/cdroms",
                                                "POST /api/vms/{name}/volumes/{volume}/reattach",
                                                "DELETE /api/vms/{name}/volumes/{volume}")),
    "vm.snapshot": Rule("manager", "vm", routes=("POST /api/vms/{name}/snapshots",
                                                 "POST /api/vms/{name}/snapshots/{snap}/revert",
                                                 "DELETE /api/vms/{name}/snapshots/{snap}")),
    "vm.clone": Rule("manager", "vm", routes=("POST /api/vms/{name}/clone",)),  # into the source's project
    "vm.import": Rule("manager", "project", routes=("POST /api/import",)),  # an OVA or disk image as the body
    "vm.import.form": Rule("signed-in", routes=("GET /import",)),
    "iso.upload": Rule("manager", "project", routes=("PUT /api/isos/{name}",)),
    # --- backups (api/backups.py): a backup belongs to its VM's project (scope "backup": its manifest's) ---
    "backup.list": Rule("viewer", "vm", routes=("GET /api/vms/{name}/backups",)),
    "backup.list.all": Rule("signed-in", routes=("GET /api/backups",)),  # only the projects one sees
    "backup.show": Rule("viewer", "backup", routes=("GET /api/backups/{backup_id}",
                                                    "POST /api/backups/{backup_id}/verify")),
    "backup.create": Rule("operator", "vm", routes=("POST /api/vms/{name}/backups",
                                                    "POST /api/vms/{name}/backups/cancel")),
    "backup.manage": Rule("manager", "vm", routes=("POST /api/vms/{name}/backups/prune",
                                                   "PUT /api/vms/{name}/backups/schedule",
                                                   "DELETE /api/vms/{name}/backups/schedule")),
    "backup.restore": Rule("manager", "backup", routes=("POST /api/backups/{backup_id}/restore",)),
    "backup.quota": Rule("admin", routes=("PUT /api/projects/{project}/backup-quota",)),
    "iso.delete": Rule("manager", "iso", routes=("DELETE /api/isos/{name}",)),
    # --- metrics and history (vmdeck.api.metrics): each caller sees its own projects' VMs ---------------
    "metrics.read": Rule("signed-in", routes=("GET /metrics", "GET /api/metrics/vms", "GET /api/metrics/notices")),
    "vm.history": Rule("viewer", "vm", routes=("GET /api/vms/{name}/history",)),
    "host.history": Rule("admin", routes=("GET /api/host/history",)),
}

# What a token limited to a scope (store.accounts.TOKEN_SCOPES) may do, whatever its role.
SCOPES: dict[str, frozenset[str]] = {"metrics": frozenset({"metrics.read", "vm.history", "host.history"})}

ROUTE_ACTIONS: dict[str, str] = {route: action for action, rule in POLICY.items() for route in rule.routes}
_READ_METHODS = {"GET", "HEAD", "OPTIONS", "WS"}


@dataclass(frozen=True)
class Grant:
    """What `enforce` decided, for the handler: the caller, the action, and the project it is about."""

    principal: Principal | None
    action: str
    project: str | None = None
    vm: str | None = None


def may(principal: Principal, need: str, project: str | None) -> bool:
    if need == "public":
        return True
    if need == "signed-in":
        return True
    if principal.admin:
        return True
    if need == "admin":
        return False
    return role_rank(principal.role_in(project)) >= role_rank(need)


def vm_not_found(uri: str, name: str) -> NotFound:
    """Exactly what a VM that does not exist answers (vmdeck.host.connection.Host.lookup)."""
    return NotFound(f"no VM named {name!r} on {uri}")


def _route_key(conn: HTTPConnection) -> str:
    route = conn.scope.get("route")
    path = getattr(route, "path", conn.scope.get("path", ""))
    method = "WS" if conn.scope["type"] == "websocket" else conn.scope.get("method", "GET")
    return f"{'GET' if method == 'HEAD' else method} {path}"


async def _json_body(conn: HTTPConnection) -> dict[str, Any]:
    """A POST's JSON object ({} for anything else); FastAPI caches the body for the handler."""
    if conn.scope["type"] != "http" or conn.scope.get("method") != "POST" \
            or not conn.headers.get("content-type", "").startswith("application/json"):
        return {}
    try:
        body = json.loads(await conn.body())  # type: ignore[attr-defined]
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _requested_project(conn: HTTPConnection, principal: Principal) -> str:
    """The project a create/upload is for: path, query, JSON body, else the caller's only one, else `default`."""
    named = conn.path_params.get("project") or conn.query_params.get("project")
    if not named:
        body = await _json_body(conn)
        if isinstance(body.get("project"), str):
            named = body["project"]
    if named:
        return str(named)
    if principal.token_project is not None:
        return principal.token_project
    mine = principal.projects()
    if len(mine) == 1 and not principal.admin:
        return mine[0]
    return DEFAULT_PROJECT


async def _scope_project(conn: HTTPConnection, principal: Principal, rule: Rule) -> tuple[str | None, str | None]:
    """(project, vm) the request is about; NotFound (as for a missing resource) when the caller cannot see it."""
    ctx = conn.app.state.ctx
    if rule.scope == "vm":
        name = conn.path_params["name"]
        from vmdeck.api.context import fleet_of

        if fleet_of(ctx) is None and not conn.query_params.get("host"):
            # One host: the event-fed inventory knows each VM's project, so the check needs no worker
            # thread or libvirt call (a VM it does not know is looked up as below).
            known, project = ctx.inventory.known_project(name)
            if known:
                _target(conn, project, name)
                if not principal.admin and principal.role_in(project) is None:
                    raise vm_not_found(ctx.host.known_uri, name)
                return project, name

        def look() -> tuple[str, str | None]:
            from vmdeck.api.context import vm_host_of

            # The VM's own host (several hosts: the resolver finds it; NotFound names them all).
            host = vm_host_of(ctx, name, conn.query_params.get("host"))
            return host.uri, project_of(host, name)

        uri, project = await anyio.to_thread.run_sync(look)
        _target(conn, project, name)
        if not principal.admin and principal.role_in(project) is None:
            raise vm_not_found(uri, name)
        return project, name
    if rule.scope == "iso":
        name = conn.path_params["name"]
        project = await anyio.to_thread.run_sync(ctx.tenancy.iso_owner, name)
        _target(conn, project, None)
        # Another project's upload and a name nobody uploaded get the same 404, or the answers would
        # tell a tenant which names other projects use; a shared library ISO (no project) is seen by
        # all, so refusing it (403, below: no role) tells nothing new.
        if not principal.admin and (
                principal.role_in(project) is None if project is not None
                else not await anyio.to_thread.run_sync(_in_iso_library, name)):
            raise NotFound(f"the ISO library has no {name!r}")
        return project, None
    if rule.scope == "backup":
        backup_id = conn.path_params["backup_id"]

        def owner() -> str | None:
            from vmdeck.storage.backup_repo import Repository

            return Repository().load(backup_id).project

        try:
            project = await anyio.to_thread.run_sync(owner)
        except VmdeckError as missing:  # unknown or unreadable: the same answer as another project's
            raise NotFound(f"no backup {backup_id!r}") from missing
        if not principal.admin and principal.role_in(project) is None:
            raise NotFound(f"no backup {backup_id!r}")
        return project, None
    if rule.scope == "project":
        project = await _requested_project(conn, principal)
        _target(conn, project, None)
        if not principal.admin and principal.role_in(project) is None:
            raise NotFound(f"no project named {project!r}")
        return project, None
    return None, None


def _in_iso_library(name: str) -> bool:
    from vmdeck.api.isos import iso_path

    return iso_path(name).is_file()  # a name that is not an ISO name: 422, whoever asks


def _target(conn: HTTPConnection, project: str | None, vm: str | None) -> None:
    # What a request aimed at, kept for the audit line of a refusal (see _audit).
    conn.scope.setdefault("state", {})["audit_target"] = (project, vm)


async def _decide(conn: HTTPConnection) -> Grant:
    key = _route_key(conn)
    action = ROUTE_ACTIONS.get(key)
    if action is None:  # fail closed: a route nobody wrote a rule for is nobody's
        raise Forbidden(f"no policy entry for {key} (add it to vmdeck.api.policy.POLICY)")
    rule = POLICY[action]
    principal: Principal | None = conn.scope.get("state", {}).get("principal")
    if rule.need == "public":
        return Grant(principal, action)
    if principal is None:
        if not conn.scope["path"].startswith("/api/") and conn.scope["type"] == "http":
            return Grant(None, action)  # a page: it sends the browser to /login itself
        raise Unauthorized("sign in or send an API token (Authorization: Bearer ...)")
    scopes = principal.token_scopes
    if scopes is not None and not any(action in SCOPES.get(scope, ()) for scope in scopes):
        raise Forbidden(f"{action} is outside this token's scopes ({', '.join(scopes)})")
    project, vm = await _scope_project(conn, principal, rule)
    if action == "vm.create":  # the audit log names the VM a create is for, as it does for later actions
        name = (await _json_body(conn)).get("name")
        vm = name[:128] if isinstance(name, str) and name.isprintable() else None
    if not may(principal, rule.need, project):
        where = f" in project {project}" if project else ""
        role = principal.role_in(project) or "no role"
        raise Forbidden(f"{action} needs {rule.need}{where}; you are {role}")
    return Grant(principal, action, project, vm)


async def enforce(conn: HTTPConnection) -> AsyncIterator[Grant]:
    """The app-wide dependency: decide, hand the Grant to the handler, audit what changed state."""
    key = _route_key(conn)
    audited = key.split(" ", 1)[0] not in _READ_METHODS and key not in ("POST /api/auth/login",)
    try:
        grant = await _decide(conn)
    except VmdeckError as refused:
        if audited:
            await _audit(conn, None, key, refused.http_status, f"refused: {refused.message}")
        if conn.scope["type"] == "websocket":
            # Closing before the handshake: the client sees a refused websocket, whatever the reason.
            raise WebSocketException(code=1008, reason=refused.message[:120]) from refused
        raise
    conn.state.grant = grant
    if not audited:
        yield grant
        return
    try:
        yield grant
    except VmdeckError as error:
        await _audit(conn, grant, key, error.http_status, f"{error.kind}: {error.message}")
        raise
    except RequestValidationError:
        await _audit(conn, grant, key, 422, "invalid_input: the request does not match the API")
        raise
    except HTTPException as error:
        await _audit(conn, grant, key, error.status_code, f"http: {error.detail}")
        raise
    except Exception as error:
        await _audit(conn, grant, key, 500, f"internal: {type(error).__name__}")
        raise
    else:
        status = getattr(conn.scope.get("route"), "status_code", None) or 200
        await _audit(conn, grant, key, status, "ok")


async def _audit(conn: HTTPConnection, grant: Grant | None, key: str, status: int, result: str) -> None:
    audit = getattr(conn.app.state.ctx, "audit", None)
    if grant is not None and getattr(getattr(conn.state, "actor", None), "recorded", False):
        return  # the use case (vmdeck.usecases) wrote this request's line, with its outcome
    principal: Principal | None = grant.principal if grant else conn.scope.get("state", {}).get("principal")
    if audit is None or principal is None:
        return
    action = grant.action if grant else ROUTE_ACTIONS.get(key, key)
    # The method too: POST and DELETE of one path (a CD inserted, ejected) are different actions to read.
    target = f"{conn.scope.get('method', 'WS')} {conn.scope.get('path', '')}"
    # A refusal is logged under the project it aimed at, so that project's managers see attacks on it;
    # the caller's own managers do not see it (unless it is their project), so nothing leaks to them.
    project, vm = (grant.project, grant.vm) if grant else conn.scope.get("state", {}).get("audit_target", (None, None))
    await anyio.to_thread.run_sync(lambda: audit.record(principal.username, principal.via, project, action, vm,
                                                        target, status, result))


def grant_of(conn: HTTPConnection) -> Grant:
    """Dependency for handlers: the decision `enforce` made for this request."""
    grant: Grant | None = getattr(conn.state, "grant", None)
    if grant is None:  # enforce always runs first; reaching here means the app was assembled without it
        raise Forbidden("request not authorized")
    return grant


def visible(principal: Principal, project: str | None, need: str = "viewer") -> bool:
    """May the caller see (or act with `need` on) a resource of `project`? Foreign VMs: admins only."""
    return principal.admin or role_rank(principal.role_in(project)) >= role_rank(need)


"""REST endpoints for signing in and out, passwords, accounts and API tokens (api layer)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from vmdeck.api.context import AppContext, app_context
from vmdeck.api.errors import TooManyAttempts, Unauthorized
from vmdeck.api.security import SESSION_COOKIE, current_principal
from vmdeck.store.accounts import Principal
from vmdeck.store.tenancy import check_role

__all__ = ["router", "set_session_cookie"]

router = APIRouter(prefix="/api/auth", tags=["auth"])
MAX_ID = 2**63 - 1  # database ids are 64-bit: a longer number is no id (and must not overflow)


class Credentials(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class Me(BaseModel):
    username: str
    is_admin: bool
    via: str
    csrf_token: str | None = None
    projects: dict[str, str] = Field(default_factory=dict, description="project -> your role there")


class PasswordChange(BaseModel):
    old_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class NewUser(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    is_admin: bool = False
    project: str | None = Field(None, description="Make the user a member of this project ...")
    role: str = Field("viewer", description="... with this role (viewer, operator, manager).")


class NewToken(BaseModel):
    name: str = Field(max_length=64)
    project: str | None = Field(None, description="The one project the token works in (administrators may omit "
                                "it for a host-wide token; others: default is their only project).")
    role: str | None = Field(None, description="viewer, operator or manager, at most yours (default: yours).")
    expires_in_days: float | None = Field(90.0, gt=0, le=3650, description="Lifetime; null (never) for "
                                          "administrators only.")
    scopes: list[str] | None = Field(None, description='Limit the token to some calls: ["metrics"] may only '
                                     "read GET /metrics and the history API (a Prometheus server's token).")


def _secure(request: Request) -> bool:
    # Browsers treat http://localhost and 127.0.0.1 as secure contexts and keep Secure cookies there;
    # over plain http to any other address a Secure cookie would never come back, so it is left off.
    return request.url.scheme == "https" or request.url.hostname in ("localhost", "127.0.0.1", "::1", "[::1]")


def set_session_cookie(request: Request, response: Response, value: str, max_age: float) -> None:
    response.set_cookie(SESSION_COOKIE, value, max_age=int(max_age), httponly=True, samesite="strict",
                        secure=_secure(request), path="/")


def _me(principal: Principal) -> Me:
    return Me(username=principal.username, is_admin=principal.admin, via=principal.via,
              csrf_token=principal.csrf_token,
              projects={p: principal.role_in(p) or "" for p in principal.projects()})


@router.post("/login", response_model=Me)
async def login(body: Credentials, request: Request, response: Response,
                ctx: AppContext = Depends(app_context)) -> Me:
    """Sign in; sets the session cookie and returns the CSRF token to send with every change."""
    address = request.client.host if request.client else "?"
    # Counted before the (slow) check: parallel guesses cannot all slip through before the first failure.
    wait = ctx.throttle.attempt(body.username, address)
    if wait:
        raise TooManyAttempts(wait)
    signed = await anyio.to_thread.run_sync(ctx.accounts.sign_in, body.username, body.password)
    if signed is None:
        raise Unauthorized("wrong user name or password")
    ctx.throttle.succeeded(body.username, address)
    cookie, principal = signed
    set_session_cookie(request, response, cookie, ctx.settings.session_ttl)
    return _me(principal)


@router.post("/logout")
def logout(request: Request, response: Response, ctx: AppContext = Depends(app_context)) -> dict[str, bool]:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        ctx.accounts.sign_out(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"signed_out": True}


@router.get("/me", response_model=Me)
def me(principal: Principal = Depends(current_principal)) -> Me:
    return _me(principal)


@router.post("/password")
def change_password(body: PasswordChange, principal: Principal = Depends(current_principal),
                    ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """Change your password; every other sign-in of yours ends (this one stays) and every API token
    of yours is revoked (make new ones): whoever knew the old password may have made some."""
    ended, revoked = ctx.accounts.change_password(principal.user_id, body.old_password, body.new_password,
                                                  keep_session=principal.session_digest)
    return {"changed": True, "other_sessions_ended": ended, "tokens_revoked": revoked}


@router.post("/users", status_code=201)
def create_user(body: NewUser, ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """Create an account (administrators: "user.manage" in vmdeck.api.policy)."""
    if body.project is not None:
        ctx.tenancy.project(body.project)  # NotFound before the account exists
        check_role(body.role)
    user_id = ctx.accounts.create_user(body.username, body.password, is_admin=body.is_admin)
    if body.project is not None:
        ctx.tenancy.set_member(body.username, body.project, body.role)
    return {"id": user_id, "username": body.username, "is_admin": body.is_admin, "project": body.project,
            "role": body.role if body.project else None}


@router.get("/tokens")
def list_tokens(principal: Principal = Depends(current_principal),
                ctx: AppContext = Depends(app_context)) -> list[dict[str, Any]]:
    """Your API tokens (never the secret itself: only its first characters). Called with a token: that token only."""
    return ctx.accounts.list_tokens(principal.user_id, only_id=principal.token_id)


@router.post("/tokens", status_code=201)
def create_token(body: NewToken, principal: Principal = Depends(current_principal),
                 ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """A new API token for scripts; the secret is shown in this answer only (the server keeps its hash).

    Made with an API token, the new one stays within it: its project, at most its role, expiring no later.
    """
    project, role = body.project, body.role
    if principal.via == "token" and principal.token_project is not None and project is None:
        project = principal.token_project
    if project is None and not principal.admin:
        mine = principal.projects()
        project = mine[0] if len(mine) == 1 else None
    if principal.via == "token":
        if role is None and not principal.admin:
            role = principal.role_in(project)  # default: the calling token's role, not its owner's
    token_id, token = ctx.accounts.create_token(
        principal.user_id, body.name, project=project, role=role, expires_in_days=body.expires_in_days,
        caller=principal, clamp_to_caller="expires_in_days" not in body.model_fields_set,
        scopes=tuple(body.scopes) if body.scopes is not None else None)
    listed = next(t for t in ctx.accounts.list_tokens(principal.user_id) if t["id"] == token_id)
    return {**listed, "token": token}


@router.delete("/tokens/{token_id}")
def delete_token(token_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(current_principal),
                 ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """Revoke one of your tokens (it stops working at once). Called with a token: that token only."""
    ctx.accounts.delete_token(principal.user_id, token_id, only_id=principal.token_id)
    return {"id": token_id, "deleted": True, "revoked": True}

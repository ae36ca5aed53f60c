"""REST endpoints for signing in and out, passwords, accounts and API tokens (api layer)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from vmdeck.api.accounts import Principal
from vmdeck.api.context import AppContext, app_context
from vmdeck.api.errors import Forbidden, Unauthorized
from vmdeck.api.security import SESSION_COOKIE, current_principal

__all__ = ["router", "set_session_cookie"]

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class Me(BaseModel):
    username: str
    is_admin: bool
    via: str
    csrf_token: str | None = None


class PasswordChange(BaseModel):
    old_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class NewUser(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    is_admin: bool = False


class NewToken(BaseModel):
    name: str = Field(max_length=64)


def _secure(request: Request) -> bool:
    # Browsers treat http://localhost and 127.0.0.1 as secure contexts and keep Secure cookies there;
    # over plain http to any other address a Secure cookie would never come back, so it is left off.
    return request.url.scheme == "https" or request.url.hostname in ("localhost", "127.0.0.1", "::1", "[::1]")


def set_session_cookie(request: Request, response: Response, value: str, max_age: float) -> None:
    response.set_cookie(SESSION_COOKIE, value, max_age=int(max_age), httponly=True, samesite="strict",
                        secure=_secure(request), path="/")


def _me(principal: Principal) -> Me:
    return Me(username=principal.username, is_admin=principal.is_admin, via=principal.via,
              csrf_token=principal.csrf_token)


@router.post("/login", response_model=Me)
async def login(body: Credentials, request: Request, response: Response,
                ctx: AppContext = Depends(app_context)) -> Me:
    """Sign in; sets the session cookie and returns the CSRF token to send with every change."""
    signed = await anyio.to_thread.run_sync(ctx.accounts.sign_in, body.username, body.password)
    if signed is None:
        raise Unauthorized("wrong user name or password")
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
                    ctx: AppContext = Depends(app_context)) -> dict[str, bool]:
    ctx.accounts.set_password(principal.user_id, body.old_password, body.new_password)
    return {"changed": True}


@router.post("/users", status_code=201)
def create_user(body: NewUser, principal: Principal = Depends(current_principal),
                ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    if not principal.is_admin:
        raise Forbidden("only an administrator can create accounts")
    user_id = ctx.accounts.create_user(body.username, body.password, is_admin=body.is_admin)
    return {"id": user_id, "username": body.username, "is_admin": body.is_admin}


@router.get("/tokens")
def list_tokens(principal: Principal = Depends(current_principal),
                ctx: AppContext = Depends(app_context)) -> list[dict[str, Any]]:
    """Your API tokens (never the secret itself: only its first characters)."""
    return ctx.accounts.list_tokens(principal.user_id)


@router.post("/tokens", status_code=201)
def create_token(body: NewToken, principal: Principal = Depends(current_principal),
                 ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    """A new API token for scripts; the secret is shown in this answer only (the server keeps its hash)."""
    token_id, token = ctx.accounts.create_token(principal.user_id, body.name)
    return {"id": token_id, "name": body.name, "token": token}


@router.delete("/tokens/{token_id}")
def delete_token(token_id: int, principal: Principal = Depends(current_principal),
                 ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    ctx.accounts.delete_token(principal.user_id, token_id)
    return {"id": token_id, "deleted": True}

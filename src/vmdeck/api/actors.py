"""The use-case layer's view of an API request: who asks (an Actor) and the stores (Services) (api layer).

Handlers that change something call vmdeck.usecases with `Depends(request_actor)`; the use case writes
the request's audit line, and vmdeck.api.policy.enforce then writes none of its own.
"""

from __future__ import annotations

from fastapi import Depends, Request

from vmdeck.api.context import AppContext, app_context, fleet_of
from vmdeck.api.policy import Grant, grant_of
from vmdeck.local_socket import VIA
from vmdeck.usecases import Actor, Services
from vmdeck.usecases.actor import ADMIN

__all__ = ["request_actor", "request_services", "services_of"]


def services_of(ctx: AppContext) -> Services:
    return Services(ctx.accounts.db, ctx.tenancy, ctx.audit, fleet_of(ctx))


def request_services(ctx: AppContext = Depends(app_context)) -> Services:
    return services_of(ctx)


def request_actor(request: Request, grant: Grant = Depends(grant_of)) -> Actor:
    """The caller as policy decided (its role in the request's project, which policy established)."""
    principal = grant.principal
    assert principal is not None  # every mutating route needs a signed-in caller
    actor = Actor(user=principal.username, origin="socket" if principal.via == VIA else "api",
                  role=ADMIN if principal.admin else principal.role_in(grant.project), project=grant.project,
                  project_known=True, via=principal.via, target=_target(request), role_of=principal.role_in)
    request.state.actor = actor
    return actor


def _target(request: Request) -> str:
    """What the audit line says was asked: the method and the path, as the policy's own lines say it."""
    return f"{request.scope.get('method', 'WS')} {request.scope.get('path', '')}"

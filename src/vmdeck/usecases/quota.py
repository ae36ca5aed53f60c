"""Holding what an operation takes against its project's quotas while it runs (use-case layer).

Every use case that makes something charges it through these two, so the rule for a VM without a
quota is written once: a VM outside any project (None), or in a project this database has no row for
(a VM another vmdeck, or virsh, put in a project this control plane never created), is held to no
quota here: the operation proceeds, charged nothing, and is still audited by its use case.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import TypeVar

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.store.quota import Demand, reserve
from vmdeck.usecases.services import Services

__all__ = ["has_quota", "held", "grown"]

T = TypeVar("T")


def has_quota(svc: Services, project: str | None) -> bool:
    """Is `project` held to quotas in this database (it has a row there)?"""
    if project is None:
        return False
    try:
        svc.tenancy.project(project)
    except NotFound:
        return False
    return True


@contextlib.contextmanager
def held(svc: Services, host: Host, project: str | None, demand: Callable[[], Demand] | None, what: str
         ) -> Iterator[None]:
    """Hold `demand()` for `what` ("vm:NAME", "snapshot:NAME") in `project` on `host` while the body runs
    (QuotaExceeded before it runs when it does not fit). `demand` is worked out only when there is a quota:
    reading sizes costs libvirt calls a VM without a quota need not pay. None: the operation takes nothing."""
    if demand is None or not has_quota(svc, project):
        yield
        return
    assert project is not None
    with reserve(svc.db, svc.counted_on(host), project, demand(), what, on=host):
        yield


def grown(svc: Services, host: Host, project: str | None, demand: Callable[[], Demand], change: Callable[[], T]) -> T:
    """Run `change`, which grows what exists by `demand()` (new minus old), holding the growth meanwhile."""
    with held(svc, host, project, demand, f"change:{secrets.token_hex(8)}"):
        return change()

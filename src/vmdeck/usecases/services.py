"""The control plane's stores a use case works with, opened by the interface that calls it (use-case layer)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from vmdeck.cluster.fleet import Fleet
from vmdeck.host.connection import Host
from vmdeck.store.auditlog import Audit
from vmdeck.store.tenancy import Tenancy

__all__ = ["Services"]


@dataclass
class Services:
    db: sessionmaker[Session]
    tenancy: Tenancy
    audit: Audit
    # Several hosts registered: a project's VMs are counted on all of them. None: on the VM's one host.
    fleet: Fleet | None = None

    def counted_on(self, host: Host) -> Host | Fleet:
        """Where a project's VMs are counted against its quotas."""
        return self.fleet or host

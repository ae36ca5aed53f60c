"""The tenancy database opened for one CLI command, and the use cases' stores on it (cli layer).

Kept apart from admin_cmds (which builds typer commands and rich tables) so that `vmdeck create`,
on the fast path (vmdeck.cli.fast), pays only for the database modules it uses.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

__all__ = ["Stores", "stores", "services", "command_services"]


class Stores:
    """The database stores, opened once per command."""

    def __init__(self, db: str | Path | None) -> None:
        from vmdeck.store.accounts import Accounts
        from vmdeck.store.auditlog import Audit
        from vmdeck.store.db import locate, open_database
        from vmdeck.store.tenancy import Tenancy

        # --db, else $VMDECK_DB, else the default file: a path, sqlite:///PATH or postgresql://... (InvalidInput
        # for anything else: exit code 2).
        self.location = locate(db or None)
        self.path = self.location.path
        self.db = open_database(self.location)
        self.tenancy = Tenancy(self.db)
        self.accounts = Accounts(self.db, 7 * 24 * 3600.0)
        self.audit = Audit(self.db)

    def record(self, action: str, target: str, *, project: str | None = None, vm: str | None = None) -> None:
        who = os.environ.get("SUDO_USER") or getpass.getuser()
        self.audit.record(who, "cli", project, action, vm, target, 200, "ok")


def stores(db: str | Path | None) -> Stores:
    return Stores(db)


def services(fleet: Any = None) -> Any:
    """The use cases' stores (vmdeck.usecases.Services) on this command's database; `fleet`: the registered
    hosts when several are (a project's VMs are counted on all of them), else None."""
    from vmdeck.usecases import Services

    s = stores(None)
    return Services(s.db, s.tenancy, s.audit, fleet)


def command_services(state: Any) -> Any:
    """services() for a typer command: the fleet unless the command talks to one host (vmdeck.cli.app.State)."""
    return services(None if state.single_host() else state.fleet())

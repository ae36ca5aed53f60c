"""The tenancy database opened for one CLI command, and `create` inside a project (cli layer).

Kept apart from admin_cmds (which builds typer commands and rich tables) so that `vmdeck create`,
on the fast path (vmdeck.cli.fast), pays only for the database modules it uses.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

__all__ = ["Stores", "stores", "create_in_project"]


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


def create_in_project(host: Any, spec: Any, project: str | None, progress: Any, cloud_init: Any = None, *,
                      fleet: Any = None) -> Any:
    """`vmdeck create --project`: create the VM in PROJECT (default `default`, created on first use),
    holding the project's quota like the API does: counted on every registered host (`fleet`), else on `host`."""
    from vmdeck.store.quota import demand_for, reserve
    from vmdeck.store.tenancy import DEFAULT_PROJECT
    from vmdeck.vm.create import create_vm

    s = stores(None)
    name = project or DEFAULT_PROJECT
    s.tenancy.ensure_project(name)
    with reserve(s.db, fleet or host, name, demand_for(spec), f"vm:{spec.name}", on=host):
        view = create_vm(host, spec, progress, project=name, cloud_init=cloud_init)
    s.record("vm.create", f"create {spec.name}", project=name, vm=spec.name)
    return view

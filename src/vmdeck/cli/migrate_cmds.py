"""`vmdeck migrate NAME --to URI`: move a VM to another libvirt host (CLI layer, thin over vmdeck.vm.migrate)."""

from __future__ import annotations

import typer

from vmdeck.cli.output import out, progress_reporter
from vmdeck.vm.migrate import migrate as migrate_vm


def migrate(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the VM to move."),
    to: str = typer.Option(..., "--to", help="libvirt URI of the destination host, e.g. qemu+ssh://host2/system."),
    offline: bool = typer.Option(False, "--offline", help="Move a shut-off VM (definition and disks) instead "
                                                          "of a running one."),
    migrate_uri: str = typer.Option(None, "--migrate-uri", help="tcp://ADDR[:PORT] where the destination's QEMU "
                                                                "receives the VM's memory (default: its hostname)."),
    shared_storage: bool = typer.Option(False, "--shared-storage", help="Disks are on storage both hosts see: "
                                                                         "do not copy them."),
) -> None:
    """Move a VM to another host: live by default (it keeps running), or --offline."""
    with progress_reporter(f"migrating {name}") as progress:
        summary = migrate_vm(ctx.obj.host(), name, to, live=not offline, migrate_uri=migrate_uri,
                             shared_storage=shared_storage, progress=progress)
    out.print(summary)


def register(app: typer.Typer) -> None:
    app.command()(migrate)

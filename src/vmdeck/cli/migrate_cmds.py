"""`vmdeck migrate NAME --to HOST|URI`: move a VM to another libvirt host (CLI layer, thin over vmdeck.usecases.hosts)."""

from __future__ import annotations

import typer

from vmdeck.cli.output import out, progress_reporter
from vmdeck.usecases.hosts import migrate as migrate_vm


def migrate(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the VM to move."),
    to: str = typer.Option(..., "--to", help="Registered host name, or the libvirt URI of the destination, "
                                             "e.g. qemu+ssh://host2/system."),
    offline: bool = typer.Option(False, "--offline", help="Move a shut-off VM (definition and disks) instead "
                                                          "of a running one."),
    migrate_uri: str = typer.Option(None, "--migrate-uri", help="tcp://ADDR[:PORT] where the destination's QEMU "
                                                                "receives the VM's memory (default: the address of a "
                                                                "registered host, else its hostname)."),
    shared_storage: bool = typer.Option(False, "--shared-storage", help="Disks are on storage both hosts see: "
                                                                         "do not copy them."),
    timeout: float = typer.Option(None, "--timeout", help="Cancel a live migration still running after this many "
                                                          "seconds; the VM keeps running where it was."),
    bandwidth: int = typer.Option(None, "--bandwidth", help="Cap the copy at this many MiB/s."),
) -> None:
    """Move a VM to another host: live by default (it keeps running), or --offline."""
    from vmdeck.cli.stores import command_services
    from vmdeck.cluster.registry import Registry
    from vmdeck.usecases import Actor

    with progress_reporter(f"migrating {name}") as progress:
        summary = migrate_vm(command_services(ctx.obj), Actor.cli(f"migrate {name} --to {to}"), ctx.obj.host(), name,
                             to, Registry(), live=not offline, migrate_uri=migrate_uri,
                             shared_storage=shared_storage, timeout=timeout, bandwidth_mib=bandwidth,
                             progress=progress)
    out.print(summary)


def register(app: typer.Typer) -> None:
    app.command()(migrate)

"""`vmdeck disk kept|reattach|purge`: the volumes a VM kept when a disk was removed (cli layer).

Commands of the `disk` group (vmdeck.cli.device_cmds registers them): `kept` lists them (vmdeck.vm.volumes),
`reattach` and `purge` are use cases (vmdeck.usecases.volumes: policy and the audit line, as through the API).
"""

from __future__ import annotations

import typer

from vmdeck.cli.output import out, print_json
from vmdeck.usecases import volumes as volume_cases
from vmdeck.vm import volumes

__all__ = ["add_commands"]

_JSON = typer.Option(False, "--json", help="Print the result as JSON.")


def _gib(size: int | None) -> str:
    return "?" if size is None else f"{size / 2**30:.2f} GiB"


def disk_kept(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    as_json: bool = _JSON,
) -> None:
    """List the volumes kept when a disk was removed (still the VM's: deleted with it)."""
    kept = volumes.kept_volumes(ctx.obj.host(), name)
    if as_json:
        print_json(kept)
        return
    if not kept:
        out.print(f"{name} has no kept volumes", markup=False)
        return
    for item in kept:
        out.print(f"{item.name}  {item.format}  {_gib(item.virtual_bytes)} (uses {_gib(item.allocated_bytes)} "
                  f"on the host)  {item.path}", markup=False)


def disk_reattach(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    volume: str = typer.Argument(..., help="A kept volume's file name (see `vmdeck disk kept`)."),
    bus: str = typer.Option("virtio", "--bus", help="virtio, scsi, sata or ide."),
    as_json: bool = _JSON,
) -> None:
    """Plug a kept volume in again as the next free disk (live on a running VM where the bus allows)."""
    from vmdeck.cli.device_cmds import _cases, _report

    _report(volume_cases.reattach_volume(*_cases(ctx, f"disk reattach {name} {volume}"), name, volume, bus=bus),
            as_json)


def disk_purge(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    volume: str = typer.Argument(..., help="A kept volume's file name (see `vmdeck disk kept`)."),
    as_json: bool = _JSON,
) -> None:
    """Delete a kept volume and all its data from the pool."""
    from vmdeck.cli.device_cmds import _cases

    item = volume_cases.purge_volume(*_cases(ctx, f"disk purge {name} {volume}"), name, volume)
    if as_json:
        print_json({"name": item.name, "path": item.path, "deleted": True})
    else:
        out.print(f"volume {item.name} of {name} deleted ({_gib(item.virtual_bytes)})", markup=False)


def add_commands(disk_app: typer.Typer) -> None:
    disk_app.command("kept")(disk_kept)
    disk_app.command("reattach")(disk_reattach)
    disk_app.command("purge")(disk_purge)

"""`vmdeck snapshot create|list|revert|delete` and `vmdeck clone` (CLI layer, thin over vmdeck.usecases.snapshots)."""

from __future__ import annotations

import typer

from vmdeck.cli.output import out, print_json, progress_reporter
from vmdeck.cli.vm_views import render_snapshots

snapshot_app = typer.Typer(help="External disk snapshots (and memory state) of a VM, as a tree.",
                           no_args_is_help=True)


@snapshot_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    snap: str = typer.Argument(None, help="Snapshot name (default: snap-DATE-TIME)."),
    description: str = typer.Option("", "--description", help="A note kept with the snapshot."),
    memory: bool = typer.Option(False, "--memory", help="Also save memory and device state (running VM): "
                                                        "reverting resumes it exactly there."),
    quiesce: bool = typer.Option(False, "--quiesce", help="Freeze the guest's filesystems around the snapshot "
                                                          "(guest agent)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Take a snapshot: every writable disk goes on a new overlay; the old image is frozen."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor
    from vmdeck.usecases import snapshots as snapshot_cases

    with progress_reporter(f"snapshot of {name}") as progress:
        # Charged to the VM's project first: each overlay as large as its disk, plus the memory state.
        result = snapshot_cases.create_snapshot(command_services(ctx.obj), Actor.cli(f"snapshot create {name}"),
                                                ctx.obj.host(), name, snap, description=description, memory=memory,
                                                quiesce=quiesce, progress=progress)
    print_json(result) if as_json else out.print(result.message)


@snapshot_app.command("list")
def list_(ctx: typer.Context, name: str = typer.Argument(..., help="The VM."),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """The VM's snapshots as a tree; `*` marks the one its present state descends from."""
    from vmdeck.vm.snapshot_ops import list_snapshots

    render_snapshots(name, list_snapshots(ctx.obj.host(), name), as_json)


@snapshot_app.command("revert")
def revert(ctx: typer.Context, name: str = typer.Argument(..., help="The VM."),
           snap: str = typer.Argument(..., help="The snapshot to go back to."),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Go back to a snapshot (the present state is discarded; the VM stays off unless it has memory state)."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor
    from vmdeck.usecases import snapshots as snapshot_cases

    with progress_reporter(f"reverting {name}") as progress:
        result = snapshot_cases.revert_snapshot(command_services(ctx.obj), Actor.cli(f"snapshot revert {name} {snap}"),
                                                ctx.obj.host(), name, snap, progress=progress)
    print_json(result) if as_json else out.print(result.message)


@snapshot_app.command("delete")
def delete(ctx: typer.Context, name: str = typer.Argument(..., help="The VM."),
           snap: str = typer.Argument(..., help="The snapshot to delete (its data is merged, never lost)."),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Delete a snapshot: merge its overlay into its frozen image, or drop a branch nothing uses."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor
    from vmdeck.usecases import snapshots as snapshot_cases

    with progress_reporter(f"deleting snapshot {snap} of {name}") as progress:
        result = snapshot_cases.delete_snapshot(command_services(ctx.obj), Actor.cli(f"snapshot delete {name} {snap}"),
                                                ctx.obj.host(), name, snap, progress=progress)
    print_json(result) if as_json else out.print(result.message)


def clone(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="The VM to clone."),
    new: str = typer.Argument(..., help="Name of the new VM."),
    linked: bool = typer.Option(False, "--linked", help="Share the source's disks as a read-only backing file "
                                                        "(instant; a running source is snapshotted first)."),
    start_now: bool = typer.Option(False, "--start", help="Start the clone."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Copy a VM: new UUID, MAC addresses, NVRAM and cloud-init instance-id; full copy or --linked."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor
    from vmdeck.usecases import snapshots as snapshot_cases

    with progress_reporter(f"cloning {source}") as progress:
        # In the source's project and within its quotas, as through the API.
        result = snapshot_cases.clone(command_services(ctx.obj), Actor.cli(f"clone {source} {new}"), ctx.obj.host(),
                                      source, new, linked=linked, start=start_now, progress=progress)
    print_json(result) if as_json else out.print(result.message)


def register(app: typer.Typer) -> None:
    app.add_typer(snapshot_app, name="snapshot")
    app.command()(clone)

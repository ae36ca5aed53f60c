"""`vmdeck backup ...`, `vmdeck export` and `vmdeck import-backup` (CLI layer, thin over vm.backup*)."""

from __future__ import annotations

import typer
from rich.table import Table

from vmdeck.cli.output import out, print_json, progress_reporter

backup_app = typer.Typer(help="Backups of VMs into a repository (a local folder or a mounted share): "
                              "incremental, verified, restorable anywhere.", no_args_is_help=True)

REPO_HELP = "Backup repository (a folder; default: $VMDECK_BACKUP_REPO or the data dir's backups/)."


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


@backup_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM (running, paused or shut off)."),
    full: bool = typer.Option(False, "--full", help="Start a new full chain even if an incremental could follow."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
    quiesce: bool = typer.Option(False, "--quiesce", help="Freeze the guest's filesystems as the backup starts "
                                                          "(guest agent)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Back up a VM: incremental when its chain can continue, full otherwise (saying why)."""
    from vmdeck.vm.backup import create_backup

    with progress_reporter(f"backup of {name}") as progress:
        result = create_backup(ctx.obj.host(), name, repo=repo, full=full, quiesce=quiesce, progress=progress)
    print_json(result) if as_json else out.print(result.message, markup=False)


@backup_app.command("list")
def list_(
    name: str = typer.Argument(None, help="Only this VM's backups."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The backups in the repository, oldest first."""
    from vmdeck.vm.backup_ops import list_backups

    found = list_backups(name, repo=repo)
    if as_json:
        print_json([m.summary() for m in found])
        return
    if not found:
        out.print("no backups" + (f" of {name}" if name else ""), markup=False)
        return
    table = Table("ID", "VM", "CREATED", "KIND", "PARENT", "SIZE", box=None, header_style="bold")
    for m in found:
        table.add_row(m.id, m.vm, m.created[:19].replace("T", " "), m.kind, m.parent or "-", _mib(m.total_bytes))
    out.print(table)


@backup_app.command("show")
def show(
    backup_id: str = typer.Argument(..., metavar="ID", help="The backup."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One backup: its files, chain and why it is full or incremental."""
    from vmdeck.vm.backup_ops import show_backup

    data = show_backup(backup_id, repo=repo)
    if as_json:
        print_json(data)
        return
    for key in ("id", "vm", "project", "created", "kind", "reason", "parent", "state", "quiesced", "checkpoint"):
        out.print(f"{key + ':':12} {data.get(key)}", markup=False)
    out.print(f"{'chain:':12} {' <- '.join(data['chain'])}", markup=False)
    out.print(f"{'size:':12} {_mib(data['bytes'])}", markup=False)
    for f in data["files"]:
        out.print(f"  {f['name']:20} {f['role']:6} {_mib(f['size']):>12}  sha256 {f['sha256'][:16]}…"
                  + (f"  on {f['parent']}" if f["parent"] else ""), markup=False)


@backup_app.command("verify")
def verify(
    backup_id: str = typer.Argument(..., metavar="ID", help="The backup (the backups it builds on are checked too)."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check the sha256 of every file and manifest the backup needs; exit 4 when anything is damaged."""
    from vmdeck.errors import Conflict
    from vmdeck.vm.backup_ops import verify_backup

    report = verify_backup(backup_id, repo=repo)
    if as_json:
        print_json({"backup": report.backup, "ok": report.ok, "checked": report.checked, "problems": report.problems})
        if not report.ok:
            raise typer.Exit(Conflict.exit_code)
        return
    if not report.ok:
        raise Conflict(report.message)
    out.print(report.message, markup=False)


@backup_app.command("restore")
def restore(
    ctx: typer.Context,
    backup_id: str = typer.Argument(..., metavar="ID", help="The backup."),
    as_name: str = typer.Option(None, "--as", help="Restore as a new VM of this name (new UUID, MACs, "
                                                   "cloud-init instance-id); default: in place."),
    host_name: str = typer.Option(None, "--host", help="Registered host to restore onto."),
    force: bool = typer.Option(False, "--force", help="In place: power the running VM off and replace it."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Restore a backup as a new VM, or in place of its VM (refused while it runs unless --force)."""
    from vmdeck.vm.backup_restore import restore_backup

    if host_name:
        ctx.obj.host_name = host_name
    with progress_reporter(f"restoring {backup_id}") as progress:
        result = restore_backup(ctx.obj.host(), backup_id, repo=repo, as_name=as_name, force=force,
                                progress=progress)
    print_json(result) if as_json else out.print(result.message, markup=False)


@backup_app.command("prune")
def prune(
    name: str = typer.Argument(..., help="The VM whose backups to prune."),
    keep_last: int = typer.Option(..., "--keep-last", help="Keep the newest N backups."),
    keep_daily: int = typer.Option(0, "--keep-daily", help="Also keep the newest backup of each of the last D days."),
    keep_weekly: int = typer.Option(0, "--keep-weekly", help="Also keep the newest of each of the last W weeks."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Remove old backups; a kept incremental whose ancestors go is made self-contained first."""
    from vmdeck.vm.backup_ops import prune_backups

    with progress_reporter(f"pruning backups of {name}") as progress:
        report = prune_backups(name, keep_last=keep_last, keep_daily=keep_daily, keep_weekly=keep_weekly,
                               repo=repo, progress=progress)
    print_json(report) if as_json else out.print(report.message, markup=False)


@backup_app.command("cancel")
def cancel(
    name: str = typer.Argument(None, help="Only this VM's backup (default: every running backup)."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
) -> None:
    """Stop running backups: each leaves nothing behind."""
    from vmdeck.vm.backup_ops import cancel_backups

    asked = cancel_backups(name, repo=repo)
    out.print("cancelling " + ", ".join(asked), markup=False)


def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    output: str = typer.Option(..., "--output", "-o", help="The file to write."),
) -> None:
    """Write a VM as one portable file (a full backup) for `vmdeck import-backup` on another vmdeck."""
    from vmdeck.vm.backup_export import export_vm

    with progress_reporter(f"exporting {name}") as progress:
        message = export_vm(ctx.obj.host(), name, output, progress=progress)
    out.print(message, markup=False)


def import_backup(
    ctx: typer.Context,
    file: str = typer.Argument(..., help="A file `vmdeck export` wrote."),
    as_name: str = typer.Option(None, "--as", help="Restore as a new VM of this name."),
    no_restore: bool = typer.Option(False, "--no-restore", help="Only add the backup to the repository."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
) -> None:
    """Add an exported backup to the repository (every file checked) and restore it."""
    from vmdeck.vm.backup_export import import_backup as run_import

    with progress_reporter(f"importing {file}") as progress:
        result = run_import(ctx.obj.host(), file, repo=repo, as_name=as_name, restore=not no_restore,
                            progress=progress)
    out.print(result.message, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")
    app.command("export")(export)
    app.command("import-backup")(import_backup)

"""`vmdeck backup ...`, `vmdeck export` and `vmdeck import-backup` (CLI layer).

Thin: every change is a use case (vmdeck.usecases.backups: policy, the quotas, the audit line, as through the
API); listing, showing and verifying read vm.backup_ops.
"""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table

from vmdeck.cli.output import out, print_json, progress_reporter

backup_app = typer.Typer(help="Backups of VMs into a repository (a local folder or a mounted share): "
                              "incremental, verified, restorable anywhere.", no_args_is_help=True)

REPO_HELP = "Backup repository (a folder; default: $VMDECK_BACKUP_REPO or the data dir's backups/)."


def _cases(ctx: typer.Context, command: str) -> tuple[Any, Any, Any]:
    """(Services, Actor, host) for a backup use case: the same functions as the API's routes."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor

    return command_services(ctx.obj), Actor.cli(command), ctx.obj.host()


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
    from vmdeck.usecases import backups

    with progress_reporter(f"backup of {name}") as progress:
        result = backups.create(*_cases(ctx, f"backup create {name}"), name, repo=repo, full=full, quiesce=quiesce,
                                progress=progress)
    print_json(result) if as_json else out.print(result.message, markup=False)


@backup_app.command("list")
def list_(
    name: str = typer.Argument(None, help="Only this VM's backups."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The backups in the repository, oldest first."""
    from vmdeck.vm.backup_ops import list_backups

    render_backups([m.summary() for m in list_backups(name, repo=repo)], name, as_json)


def render_backups(found: list[dict[str, Any]], name: str | None, as_json: bool) -> None:
    """Backup summaries (Manifest.summary(): here, or a server's answer), oldest first."""
    if as_json:
        print_json(found)
        return
    if not found:
        out.print("no backups" + (f" of {name}" if name else ""), markup=False)
        return
    table = Table("ID", "VM", "CREATED", "KIND", "PARENT", "SIZE", box=None, header_style="bold")
    for m in found:
        table.add_row(m["id"], m["vm"], m["created"][:19].replace("T", " "), m["kind"], m["parent"] or "-",
                      _mib(m["bytes"]))
    out.print(table)


@backup_app.command("show")
def show(
    backup_id: str = typer.Argument(..., metavar="ID", help="The backup."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One backup: its files, chain and why it is full or incremental."""
    from vmdeck.vm.backup_ops import show_backup

    render_backup(show_backup(backup_id, repo=repo), as_json)


def render_backup(data: dict[str, Any], as_json: bool) -> None:
    """One backup as `backup show` prints it (in-process and through a remote)."""
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
    from vmdeck.vm.backup_ops import verify_backup

    report = verify_backup(backup_id, repo=repo)
    render_verify({"backup": report.backup, "ok": report.ok, "checked": report.checked, "problems": report.problems},
                  report.message, as_json)


def render_verify(found: dict[str, Any], message: str, as_json: bool) -> None:
    """A verification as `backup verify` reports it (in-process and through a remote): exit 4 when damaged."""
    from vmdeck.errors import Conflict

    if as_json:
        print_json(found)
        if not found["ok"]:
            raise typer.Exit(Conflict.exit_code)
        return
    if not found["ok"]:
        raise Conflict(message)
    out.print(message, markup=False)


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
    from vmdeck.usecases import backups

    if host_name:
        ctx.obj.host_name = host_name
    with progress_reporter(f"restoring {backup_id}") as progress:
        result = backups.restore(*_cases(ctx, f"backup restore {backup_id}"), backup_id, repo=repo, as_name=as_name,
                                 force=force, progress=progress)
    print_json(result) if as_json else out.print(result.message, markup=False)


@backup_app.command("prune")
def prune(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM whose backups to prune."),
    keep_last: int = typer.Option(..., "--keep-last", help="Keep the newest N backups."),
    keep_daily: int = typer.Option(0, "--keep-daily", help="Also keep the newest backup of each of the last D days."),
    keep_weekly: int = typer.Option(0, "--keep-weekly", help="Also keep the newest of each of the last W weeks."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Remove old backups; a kept incremental whose ancestors go is made self-contained first."""
    from vmdeck.usecases import backups

    with progress_reporter(f"pruning backups of {name}") as progress:
        report = backups.prune(*_cases(ctx, f"backup prune {name}"), name, keep_last=keep_last,
                               keep_daily=keep_daily, keep_weekly=keep_weekly, repo=repo, progress=progress)
    print_json(report) if as_json else out.print(report.message, markup=False)


@backup_app.command("cancel")
def cancel(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="Only this VM's backup (default: every running backup)."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
) -> None:
    """Stop running backups: each leaves nothing behind."""
    from vmdeck.usecases import backups

    asked = backups.cancel(*_cases(ctx, f"backup cancel {name or ''}".strip()), name, repo=repo)
    out.print("cancelling " + ", ".join(asked), markup=False)


@backup_app.command("schedule")
def schedule(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    every: str = typer.Option(None, "--every", help="How often: 30m, 6h, 2d, hourly, daily, weekly."),
    keep: int = typer.Option(None, "--keep", "--keep-last", help="Keep the newest N backups (pruned after each)."),
    keep_daily: int = typer.Option(0, "--keep-daily", help="Also keep the newest of each of the last D days."),
    keep_weekly: int = typer.Option(0, "--keep-weekly", help="Also keep the newest of each of the last W weeks."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
    remove: bool = typer.Option(False, "--remove", help="Remove the VM's schedule."),
) -> None:
    """Back a VM up on a schedule, run by `vmdeck serve` (or `vmdeck backup run-due` from cron)."""
    from vmdeck.errors import InvalidInput
    from vmdeck.usecases import backups

    if remove:
        backups.unschedule(*_cases(ctx, f"backup schedule {name} --remove"), name)
        out.print(f"{name}: backup schedule removed", markup=False)
        return
    if every is None or keep is None:
        raise InvalidInput("say --every (e.g. 6h or daily) and --keep N")
    made = backups.schedule(*_cases(ctx, f"backup schedule {name}"), name, every=every, keep_last=keep,
                            keep_daily=keep_daily, keep_weekly=keep_weekly, repo=repo)
    render_schedule(name, every, made.keep_last, keep_daily, keep_weekly)


def render_schedule(name: str, every: str, keep_last: int, keep_daily: int, keep_weekly: int) -> None:
    out.print(f"{name}: backed up every {every}, keeping the newest {keep_last}"
              + (f", {keep_daily} daily" if keep_daily else "") + (f", {keep_weekly} weekly" if keep_weekly else ""),
              markup=False)


@backup_app.command("schedules")
def schedules_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The backup schedules and how their last run went."""
    from vmdeck.cli.stores import stores
    from vmdeck.store.backups import schedules

    found = schedules(stores(None).db)
    if as_json:
        print_json(found)
        return
    table = Table("VM", "EVERY", "KEEP", "LAST RUN", "RESULT", box=None, header_style="bold")
    for s in found:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.last_run)) if s.last_run else "never"
        table.add_row(s.vm, f"{s.every_s // 60} min", str(s.keep_last), when, s.last_result or "")
    out.print(table)


@backup_app.command("run-due")
def run_due_cmd(
    ctx: typer.Context,
    run_all: bool = typer.Option(False, "--all", help="Run every schedule of this host now, due or not."),
) -> None:
    """Take the scheduled backups that are due on this host (for cron, where no `vmdeck serve` runs)."""
    from vmdeck.usecases import backups

    with progress_reporter("scheduled backups") as progress:
        lines = backups.run_due(*_cases(ctx, "backup run-due"), force=run_all, progress=progress)
    for line in lines or ["no backup is due"]:
        out.print(line, markup=False)
    if any(" failed: " in line for line in lines):
        raise typer.Exit(1)


@backup_app.command("quota")
def quota(
    project: str = typer.Argument(..., help="The project."),
    gib: float = typer.Option(None, "--gib", help="The most backup storage its backups may take; omit to show it."),
    unlimited: bool = typer.Option(False, "--unlimited", help="Remove the limit."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
) -> None:
    """Show or set a project's backup-storage quota (checked before every backup of its VMs)."""
    from vmdeck.cli.stores import stores
    from vmdeck.storage.backup_repo import Repository
    from vmdeck.store.backups import backup_quota_gib, project_backup_bytes, set_backup_quota

    db = stores(None).db
    if gib is not None or unlimited:
        set_backup_quota(db, project, None if unlimited else gib)
    limit = backup_quota_gib(db, project)
    used = project_backup_bytes(Repository(repo), project) / 2**30
    out.print(f"{project}: backups take {used:.2f} GiB of " + ("no limit" if limit is None else f"{limit:g} GiB"),
              markup=False)


def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    output: str = typer.Option(..., "--output", "-o", help="The file to write."),
) -> None:
    """Write a VM as one portable file (a full backup) for `vmdeck import-backup` on another vmdeck."""
    from vmdeck.usecases import backups

    with progress_reporter(f"exporting {name}") as progress:
        message = backups.export(*_cases(ctx, f"export {name}"), name, output, progress=progress)
    out.print(message, markup=False)


def import_backup(
    ctx: typer.Context,
    file: str = typer.Argument(..., help="A file `vmdeck export` wrote."),
    as_name: str = typer.Option(None, "--as", help="Restore as a new VM of this name."),
    no_restore: bool = typer.Option(False, "--no-restore", help="Only add the backup to the repository."),
    repo: str = typer.Option(None, "--repo", help=REPO_HELP),
) -> None:
    """Add an exported backup to the repository (every file checked) and restore it."""
    from vmdeck.usecases import backups

    with progress_reporter(f"importing {file}") as progress:
        result = backups.import_backup(*_cases(ctx, "import-backup"), file, repo=repo, as_name=as_name,
                                       restore_it=not no_restore, progress=progress)
    out.print(result.message, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")
    app.command("export")(export)
    app.command("import-backup")(import_backup)

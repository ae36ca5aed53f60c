"""`vmdeck task list|show`: the task list of long operations (creates, clones, uploads, backups ...) (cli layer).

Reads the same store as `vmdeck serve` (vmdeck.store.tasks): tasks started from the web, the API and
this command line alike. Before listing, tasks left running by a process of this machine that died are
marked failed ("the server stopped").
"""

from __future__ import annotations

import getpass
import os
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from vmdeck.cli.output import out, print_json

task_app = typer.Typer(help="Long operations (create, clone, snapshot, upload, migrate, backup ...): "
                            "their progress, outcome and log.", no_args_is_help=True)

DB_OPTION = typer.Option(None, "--db", envvar="VMDECK_DB", parser=str, help="The database of vmdeck serve: a file, "
                         "sqlite:///PATH or postgresql://USER@HOST/DB (default: <data dir>/web/vmdeck.sqlite).")


def register(app: typer.Typer) -> None:
    app.add_typer(task_app, name="task")


def _tasks(db: str | None) -> Any:
    from vmdeck.cli.stores import stores
    from vmdeck.store.tasks import Tasks

    return Tasks(stores(db).db)


def _progress(task: dict[str, Any]) -> str:
    if not task["total"]:
        return "-"
    return f"{min(100, int(100 * (task['done'] or 0) / task['total']))}%"


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60} min"


@task_app.command("list")
def list_(
    everyone: bool = typer.Option(False, "--all", help="Everyone's tasks (default: yours, by your user name)."),
    state: str = typer.Option(None, "--state", help="queued | running | done | failed | cancelled."),
    vm: str = typer.Option(None, "--vm", help="Only this VM's tasks."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    db: str = DB_OPTION,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recent tasks, newest first: kind, target, user, state, progress, duration, result."""
    from vmdeck.errors import InvalidInput
    from vmdeck.store.tasks import STATES

    if state is not None and state not in STATES:
        raise InvalidInput(f"no task state {state!r}: give one of {', '.join(STATES)}", field="state")
    tasks = _tasks(db)
    tasks.fail_orphans()
    user = None if everyone else os.environ.get("SUDO_USER") or getpass.getuser()
    rows = tasks.entries(None, state=state, vm=vm, user=user, limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no tasks" + ("" if everyone else f" of {user} (--all: everyone's)"), highlight=False)
        return
    table = Table("ID", "STARTED (UTC)", "KIND", "TARGET", "USER", "STATE", "PROGRESS", "DURATION", "RESULT",
                  box=None, header_style="bold")
    for t in rows:
        table.add_row(str(t["id"]), t["started_at"][:19].replace("T", " "), t["kind"], escape(t["target"]),
                      f"{escape(t['user'])} ({t['origin']})", t["state"], _progress(t), _duration(t["duration_s"]),
                      escape(t["result"] or ""))
    out.print(table)


@task_app.command("show")
def show(task_id: int = typer.Argument(..., help="The task's number (vmdeck task list)."), db: str = DB_OPTION,
         as_json: bool = typer.Option(False, "--json")) -> None:
    """One task with its log."""
    from vmdeck.errors import NotFound

    task = _tasks(db).get(task_id) if 0 < task_id < 2**63 else None
    if task is None:
        raise NotFound(f"no task {task_id}")
    if as_json:
        print_json(task)
        return
    where = f" in project {task['project']}" if task["project"] else ""
    out.print(f"task {task['id']}: {task['kind']} {escape(task['target'])}{where}, by {escape(task['user'])} "
              f"({task['origin']})", highlight=False)
    out.print(f"state: {task['state']}, progress {_progress(task)}, started {task['started_at']}, "
              f"took {_duration(task['duration_s'])}", highlight=False)
    if task["result"]:
        out.print(f"result: {escape(task['result'])}", highlight=False)
    for line in task["log"]:
        out.print(f"  {escape(line)}", highlight=False)

"""`vmdeck doctor [--fix] [--json]`: what vmdeck made and a crash left behind (cli layer)."""

from __future__ import annotations

import typer

from vmdeck.cli.output import out, print_json
from vmdeck.vm.doctor import examine, repair


def doctor(
    ctx: typer.Context,
    fix: bool = typer.Option(False, "--fix", help="Remove what vmdeck can prove is its own leftover."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> None:
    """List leftovers of interrupted operations (orphan volumes, stale temp files, seed ISOs); --fix removes them."""
    host = ctx.obj.host()
    findings = examine(host)
    removed = repair(host, findings) if fix else []
    if as_json:
        print_json({"findings": findings, "removed": removed})
        return
    if not findings:
        out.print("nothing left behind", markup=False)
        return
    done = {f.path for f in removed}
    for finding in findings:
        status = "removed" if finding.path in done else ("fixable" if finding.fixable else "kept")
        out.print(f"{status:8} {finding.kind:14} {finding.path}: {finding.reason}", markup=False)
    fixable = sum(f.fixable for f in findings)
    if not fix and fixable:
        out.print(f"{fixable} leftover(s) can be removed: vmdeck doctor --fix", markup=False)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)

"""`vmdeck template list|show`."""

from __future__ import annotations

import typer
import yaml
from rich.table import Table

from vmdeck.cli.output import out, print_json
from vmdeck.spec.templates import get_template, list_templates

template_app = typer.Typer(help="Templates: the base forms VMs are created from.", no_args_is_help=True)


@template_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """List built-in and user templates."""
    templates = list_templates()
    if as_json:
        print_json([{"name": t.name, "origin": t.origin, **t.spec.model_dump(mode="json")} for t in templates])
        return
    table = Table("NAME", "ARCH", "MACHINE", "vCPUs", "MEMORY", "ORIGIN", "DESCRIPTION", box=None, header_style="bold")
    for t in templates:
        table.add_row(t.name, t.spec.arch, t.spec.machine, str(t.spec.vcpus), f"{t.spec.memory_mib} MiB",
                      t.origin, t.spec.description)
    out.print(table)


@template_app.command()
def show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a template's full, resolved settings."""
    template = get_template(name)
    data = template.spec.model_dump(mode="json")
    if as_json:
        print_json({"name": template.name, "origin": template.origin, **data})
        return
    out.print(f"# {template.name} ({template.origin})", markup=False)
    out.print(yaml.safe_dump(data, sort_keys=False).rstrip(), markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(template_app, name="template")

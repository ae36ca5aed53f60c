"""`vmdeck forward add|list|remove`: port forwards from this host to a VM on a vmdeck NAT network (cli layer).

Thin: each change is one use case (vmdeck.usecases.forwards: policy, the forwards quota, the audit line,
as through the API); the command acts on the database of `vmdeck serve` ($VMDECK_DB or the default).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from vmdeck.cli.output import out, print_json

forward_app = typer.Typer(help="Port forwards: a port of this host to a port of a VM on a vmdeck NAT network.",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(forward_app, name="forward")


def _cases(ctx: typer.Context, command: str) -> tuple[Any, Any, Any]:
    from vmdeck.cli.stores import services
    from vmdeck.usecases import Actor

    return services(None), Actor.cli(command), ctx.obj.host()


@forward_app.command("add")
def add(
    ctx: typer.Context,
    vm: str = typer.Argument(..., help="The VM."),
    ports: str = typer.Argument(..., help="HOSTPORT[:GUESTPORT] (the guest port defaults to the host port)."),
    proto: str = typer.Option("tcp", "--proto", help="tcp | udp."),
    address: str = typer.Option("127.0.0.1", "--address", help="The host address to forward from: 127.0.0.1 "
                                "(this host only) or one of the host's own addresses."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Forward a port of this host to the VM (its NIC gets a fixed address if it has none)."""
    from vmdeck.usecases import forwards

    made = forwards.add(*_cases(ctx, f"forward add {vm} {ports}"), vm, ports, proto=proto, address=address)
    if as_json:
        print_json(made.to_dict())
        return
    out.print(f"{made.label} -> {vm} {made.guest_ip}:{made.guest_port} ({made.network})", highlight=False)


@forward_app.command("list")
def list_(vm: str = typer.Argument(None, help="Only this VM's forwards."),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """The port forwards of this host (or of one VM)."""
    from vmdeck.cli.stores import services
    from vmdeck.usecases import forwards

    rows = forwards.list_forwards(services(None), vm)
    if as_json:
        print_json([f.to_dict() for f in rows])
        return
    table = Table("VM", "ADDRESS", "PORT", "PROTO", "GUEST", "NETWORK", "PROJECT", box=None, header_style="bold")
    for f in rows:
        table.add_row(f.vm, f.address, str(f.host_port), f.proto, f"{f.guest_ip}:{f.guest_port}", f.network,
                      f.project or "-")
    out.print(table)


@forward_app.command("remove")
def remove(
    ctx: typer.Context,
    vm: str = typer.Argument(..., help="The VM."),
    host_port: int = typer.Argument(..., help="The forwarded host port."),
    proto: str = typer.Option("tcp", "--proto", help="tcp | udp."),
    address: str = typer.Option(None, "--address", help="The host address (when the port is forwarded on several)."),
) -> None:
    """Remove a port forward: its rule goes from the firewall at once."""
    from vmdeck.usecases import forwards

    gone = forwards.remove(*_cases(ctx, f"forward remove {vm} {host_port}"), vm, host_port, proto=proto,
                           address=address)
    out.print(f"removed {gone.label} -> {vm}", highlight=False)

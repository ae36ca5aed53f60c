"""`vmdeck network create|list|show|delete|reserve`: virtual networks as objects (cli layer)."""

from __future__ import annotations

import dataclasses

import typer
from rich.table import Table

from vmdeck.cli.output import out, print_json

network_app = typer.Typer(help="Virtual networks: NAT, isolated, routed or open; a project's own.",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(network_app, name="network")


@network_app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    mode: str = typer.Option("nat", "--mode", help="nat | isolated | routed | open."),
    subnet: str = typer.Option(..., "--subnet", help="Private IPv4 subnet, e.g. 10.20.0.0/24 (/16 to /29)."),
    dhcp_range: str = typer.Option(None, "--dhcp-range", help="FIRST-LAST (default: the upper half of the subnet)."),
    project: str = typer.Option(None, "--project", help="The project that owns it (its VMs only may join)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a network (a bridge with DHCP; the host's gateway is the subnet's first address)."""
    from vmdeck.vm.networks import create_network

    if project is None:
        view = create_network(ctx.obj.host(), name, mode=mode, subnet=subnet, dhcp_range=dhcp_range)
    else:  # a project's network counts against its `networks` quota, checked before anything exists
        from vmdeck.cli.stores import stores
        from vmdeck.store.quota import network_room

        s = stores(None)
        s.tenancy.ensure_project(project)
        with network_room(s.db, ctx.obj.host(), project):
            view = create_network(ctx.obj.host(), name, mode=mode, subnet=subnet, dhcp_range=dhcp_range,
                                  project=project)
    if as_json:
        print_json(dataclasses.asdict(view))
        return
    out.print(f"network {view.name} created: {view.mode}, {view.subnet} (gateway {view.gateway}, DHCP "
              f"{view.dhcp[0]}-{view.dhcp[1]}), bridge {view.bridge}" if view.dhcp else f"network {view.name} created",
              highlight=False)


@network_app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every virtual network of the host, vmdeck's and the others."""
    from vmdeck.vm.networks import list_networks

    views = list_networks(ctx.obj.host())
    if as_json:
        print_json([dataclasses.asdict(v) for v in views])
        return
    table = Table("NAME", "MODE", "SUBNET", "DHCP", "PROJECT", "BRIDGE", "STATE", box=None, header_style="bold")
    for v in views:
        table.add_row(v.name, v.mode, v.subnet or "-", "-".join(v.dhcp) if v.dhcp else "-",
                      v.project or ("-" if v.vmdeck else "(not vmdeck's)"), v.bridge or "-",
                      "active" if v.active else "inactive")
    out.print(table)


@network_app.command("show")
def show(ctx: typer.Context, name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """One network, with its DHCP reservations and the VMs on it."""
    from vmdeck.vm.networks import network_users, show_network

    view = show_network(ctx.obj.host(), name)
    data = {**dataclasses.asdict(view), "vms": network_users(ctx.obj.host(), name)}
    if as_json:
        print_json(data)
        return
    for key in ("name", "mode", "subnet", "gateway", "dhcp", "bridge", "project", "active", "autostart", "vms"):
        value = data[key]
        out.print(f"{key}: {'-'.join(value) if key == 'dhcp' and value else value}", highlight=False)
    for r in view.reservations:
        out.print(f"reserved: {r.ip} for {r.mac} ({r.name or '-'})", highlight=False)


@network_app.command("delete")
def delete(ctx: typer.Context, name: str) -> None:
    """Delete a network no VM uses."""
    from vmdeck.vm.networks import delete_network

    delete_network(ctx.obj.host(), name)
    out.print(f"network {name} deleted")


@network_app.command("reserve")
def reserve(ctx: typer.Context, network: str, vm: str,
            ip: str = typer.Option(None, "--ip", help="The address (default: the first free one of the range).")) -> None:
    """Give VM's NIC on NETWORK a fixed address (a static DHCP lease)."""
    from vmdeck.vm.networks import reserve as reserve_address

    made = reserve_address(ctx.obj.host(), network, vm, ip)
    out.print(f"{vm} ({made.mac}) gets {made.ip} on {network}", highlight=False)

"""How the CLI prints a VM list and one VM (cli layer), whether the data came from libvirt in-process
or from a vmdeck server (`--remote`): one renderer, so both print the same table and the same JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from vmdeck.cli.output import info, out, print_json
from vmdeck.cli.plain import STATE_STYLE
from vmdeck.domxml.devices import DeviceRow
from vmdeck.vm.inventory import VmSummary

if TYPE_CHECKING:
    from vmdeck.vm.snapshots import SnapshotTree

__all__ = ["render_list", "render_show", "render_snapshots"]


def render_list(vms: list[VmSummary], unreachable: dict[str, str], as_json: bool) -> None:
    if as_json:
        print_json(vms)
        for name, why in unreachable.items():
            info(f"host {name} unreachable: {why}")
        return
    if not vms:
        out.print("no VMs. Create one with: vmdeck create NAME (templates: vmdeck template list)")
    else:
        table = Table("NAME", "STATE", "vCPUs", "MEMORY", "PROJECT", "HOST", box=None, header_style="bold")
        for vm in vms:
            style = STATE_STYLE.get(vm.state, "")
            table.add_row(vm.name, f"[{style}]{vm.state}[/]" if style else vm.state, str(vm.vcpus),
                          f"{vm.memory_mib} MiB", vm.project or "-", vm.host)
        out.print(table)
    for name, why in unreachable.items():
        out.print(f"[red]host {name} unreachable[/red]: {why}", highlight=False)


def render_show(details: dict[str, Any], as_json: bool) -> None:
    """`details`: the VM as vmdeck.vm.inventory.VmDetails.to_dict() gives it, with its `devices` rows."""
    if as_json:
        print_json(details)
        return
    out.print(f"[bold]{details['name']}[/bold]  {details['state']}  ({details['accel']}, "
              f"template {details['template'] or '-'})")
    out.print(f"  {details['arch']} {details['machine']}, {details['vcpus']} vCPU, "
              f"{details['memory_mib']} MiB (current {details['current_memory_mib']} MiB), boot {details['boot_kind']}"
              + (f", TPM {details['tpm']}" if details.get("tpm") else ""))
    if details.get("pending"):
        waiting = ", ".join(f"{value} vCPU" if key == "vcpus" else f"{value} MiB" if key == "memory_mib"
                            else f"{key} {value}" for key, value in details["pending"].items())
        out.print(f"  [yellow]pending[/yellow] (at the next boot; `vmdeck reboot {details['name']}` applies it): "
                  f"{waiting}", highlight=False)
    moved = details.get("last_migration")
    if moved:
        timing = ", ".join(f"{label} {moved[key]} ms" for key, label in (("downtime_ms", "downtime"),
                                                                          ("total_ms", "total")) if key in moved)
        out.print(f"  last migration: {moved.get('outcome')} from {moved.get('from')} to {moved.get('to')}"
                  + (f" ({timing})" if timing else ""), highlight=False)
    table = Table("DEVICE", "TARGET", "BUS", "SOURCE", "STATUS", box=None, header_style="bold")
    for row in details["devices"]:
        row = row if isinstance(row, DeviceRow) else DeviceRow(**row)
        owned = "  [dim](vmdeck volume)[/dim]" if row.source in details["owned_volumes"] else ""
        table.add_row(row.kind, row.key, row.bus, (row.source or "(empty)") + owned, row.status)
    for gfx in details["graphics"]:
        if gfx.get("listen") == "socket":
            where = f"socket {gfx.get('socket') or '(when running)'}"
        else:
            where = f"{gfx['listen']}:{gfx['port']}" if gfx["port"] and gfx["port"] > 0 else "(when running)"
        if gfx["websocket"] and gfx["websocket"] > 0:
            where += f" websocket {gfx['websocket']}"
        table.add_row("display", gfx["type"], "", where)
    for fwd in details["port_forwards"]:
        table.add_row("forward", fwd["proto"], "", f"{fwd['address'] or '*'}:{fwd['host_port']} -> guest port "
                      f"{fwd['guest_port']}")
    out.print(table)
    if details["extra"].get("base-image"):
        out.print(f"  disk: linked clone of image {details['extra']['base-image']}; "
                  f"login user {details['extra'].get('login-user', '-')} (vmdeck ssh {details['name']})")


def render_snapshots(name: str, tree: SnapshotTree, as_json: bool) -> None:
    """The VM's snapshot tree; `*` marks the one its present state descends from."""
    if as_json:
        print_json(tree.to_dict())
        return
    if not tree.snapshots:
        out.print(f"{name} has no snapshots")
        return
    table = Table("", "NAME", "CREATED", "STATE", "DISKS", "DESCRIPTION", box=None, header_style="bold")
    for prefix, snap in tree.lines():
        mark = "*" if snap.name == tree.current else ""
        state = snap.state + (" +memory" if snap.memory else "") + (" quiesced" if snap.quiesced else "")
        table.add_row(mark, prefix + snap.name, snap.created, state, ",".join(t for t, _ in snap.disks),
                      snap.description)
    out.print(table)

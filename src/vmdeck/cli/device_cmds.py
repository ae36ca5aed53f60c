"""`vmdeck cdrom insert|eject|add`, `vmdeck iso make`, `vmdeck disk add|attach|remove|resize`, `vmdeck nic add|remove`.

`vmdeck disk kept|reattach|purge` live in vmdeck.cli.volume_cmds and join the `disk` group in register().

Thin: each change is one use case (vmdeck.usecases.devices: policy, the disk quota, the audit line, as
through the API), `iso make` one core function (storage/iso.py); each prints what it did, --json as data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vmdeck.cli.output import err, out, print_json
from vmdeck.host.connection import Host
from vmdeck.storage.iso import make_iso
from vmdeck.usecases import devices as device_cases
from vmdeck.vm.devices import DeviceChange

cdrom_app = typer.Typer(help="CD/DVD drives and their media.", no_args_is_help=True)
iso_app = typer.Typer(help="ISO images.", no_args_is_help=True)
disk_app = typer.Typer(help="Disks: add, attach, remove, resize (live where the bus allows).", no_args_is_help=True)
nic_app = typer.Typer(help="Network interfaces: add, remove (live on a running VM).", no_args_is_help=True)

_JSON = typer.Option(False, "--json", help="Print the result as JSON.")
_FIX = typer.Option(False, "--fix-permissions",
                    help="Grant the QEMU user search permission (an ACL) on folders it cannot enter.")


def fix_permissions(host: Host, path: Path | None, *, write: bool = False) -> None:
    """--fix-permissions: add the ACLs QEMU needs to reach `path`, saying each one on stderr."""
    from vmdeck.host.qemu_access import applies_to, grant_qemu_access

    if path is None or not applies_to(host):
        return
    for line in grant_qemu_access(path.expanduser().absolute(), write=write):
        err.print(line, markup=False)


def _cases(ctx: typer.Context, command: str) -> tuple[Any, Any, Host]:
    """(Services, Actor, host) for a device use case: the same functions as the API's routes."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor

    return command_services(ctx.obj), Actor.cli(command), ctx.obj.host()


def _report(change: DeviceChange, as_json: bool) -> None:
    if as_json:
        print_json(change)
    else:
        out.print(change.message, markup=False)


@cdrom_app.command("insert")
def cdrom_insert(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    iso: Path = typer.Argument(..., help="ISO image to insert."),
    drive: str = typer.Option(None, "--drive", help="Drive target (sda, hdc ...); default: the first drive."),
    fix: bool = _FIX,
    as_json: bool = _JSON,
) -> None:
    """Insert an ISO into a CD/DVD drive (live on a running VM, and for the next boot)."""
    if fix:
        fix_permissions(ctx.obj.host(), iso)
    _report(device_cases.insert_media(*_cases(ctx, f"cdrom insert {name}"), name, iso, drive=drive), as_json)


@cdrom_app.command("eject")
def cdrom_eject(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    drive: str = typer.Option(None, "--drive", help="Drive target; default: the first drive."),
    force: bool = typer.Option(False, "--force", help="Eject even if the guest has locked the tray."),
    as_json: bool = _JSON,
) -> None:
    """Eject the media from a CD/DVD drive (the ISO file is kept)."""
    _report(device_cases.eject_media(*_cases(ctx, f"cdrom eject {name}"), name, drive=drive, force=force), as_json)


@cdrom_app.command("add")
def cdrom_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    bus: str = typer.Option(None, "--bus", help="scsi, sata or ide; default: what the machine type has."),
    iso: Path = typer.Option(None, "--iso", help="Insert this ISO in the new drive."),
    fix: bool = _FIX,
    as_json: bool = _JSON,
) -> None:
    """Add a CD/DVD drive (it appears at the VM's next boot)."""
    if fix:
        fix_permissions(ctx.obj.host(), iso)
    _report(device_cases.add_drive(*_cases(ctx, f"cdrom add {name}"), name, bus=bus, iso=iso), as_json)


@iso_app.command("make")
def iso_make(
    folder: Path = typer.Argument(..., help="Folder whose contents go into the ISO."),
    output: Path = typer.Option(..., "--output", "-o", help="The ISO file to write."),
    label: str = typer.Option(None, "--label", help="Volume label (default: from the folder name)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Build an ISO 9660 image (Rock Ridge + Joliet) from a folder, e.g. to move files into a guest."""
    path = make_iso(folder, output, label=label, overwrite=overwrite)
    out.print(f"wrote {path} ({path.stat().st_size / 1024 / 1024:.1f} MiB)", markup=False)


@disk_app.command("add")
def disk_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    size: float = typer.Option(..., "--size", help="Size of the new volume in GiB."),
    bus: str = typer.Option("virtio", "--bus", help="virtio (hot-plug), scsi (hot-plug), sata or ide (next boot)."),
    fmt: str = typer.Option("qcow2", "--format", help="qcow2 or raw."),
    as_json: bool = _JSON,
) -> None:
    """Create a new volume and plug it in (deleted with the VM)."""
    _report(device_cases.add_disk(*_cases(ctx, f"disk add {name}"), name, size, bus=bus, fmt=fmt), as_json)


@disk_app.command("attach")
def disk_attach(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    path: Path = typer.Argument(..., help="An existing disk image (never deleted by vmdeck)."),
    bus: str = typer.Option("virtio", "--bus", help="virtio, scsi, sata or ide."),
    readonly: bool = typer.Option(False, "--readonly", help="Attach read-only."),
    fix: bool = _FIX,
    as_json: bool = _JSON,
) -> None:
    """Attach an existing disk image."""
    if fix:
        fix_permissions(ctx.obj.host(), path, write=not readonly)
    _report(device_cases.attach_disk(*_cases(ctx, f"disk attach {name}"), name, path, bus=bus, readonly=readonly),
            as_json)


@disk_app.command("remove")
def disk_remove(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    target: str = typer.Argument(..., help="The disk's target (vdb, sda ...), as `vmdeck show` lists it."),
    delete_volume: bool = typer.Option(False, "--delete-volume",
                                       help="Also delete the volume, if vmdeck created it for this VM."),
    as_json: bool = _JSON,
) -> None:
    """Unplug a disk (live where the bus allows)."""
    _report(device_cases.remove_disk(*_cases(ctx, f"disk remove {name} {target}"), name, target,
                                     delete_volume=delete_volume), as_json)


@disk_app.command("resize")
def disk_resize(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    target: str = typer.Argument(..., help="The disk's target (vda, vdb ...)."),
    size: float = typer.Argument(..., help="New size in GiB (only growing is allowed)."),
    as_json: bool = _JSON,
) -> None:
    """Grow a disk (live on a running VM)."""
    _report(device_cases.resize_disk(*_cases(ctx, f"disk resize {name} {target}"), name, target, size), as_json)


@nic_app.command("add")
def nic_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    model: str = typer.Option("virtio", "--model", help="virtio, e1000, e1000e or rtl8139."),
    network: str = typer.Option("user", "--network", help="'user' (QEMU user networking) or a libvirt network."),
    mac: str = typer.Option(None, "--mac", help="MAC address (default: a random 52:54:00:xx:xx:xx)."),
    as_json: bool = _JSON,
) -> None:
    """Add a network interface."""
    _report(device_cases.add_nic(*_cases(ctx, f"nic add {name}"), name, model=model, network=network, mac=mac), as_json)


@nic_app.command("remove")
def nic_remove(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    mac: str = typer.Argument(..., help="The NIC's MAC address, as `vmdeck show` lists it."),
    as_json: bool = _JSON,
) -> None:
    """Remove a network interface."""
    _report(device_cases.remove_nic(*_cases(ctx, f"nic remove {name} {mac}"), name, mac), as_json)


def register(app: typer.Typer) -> None:
    from vmdeck.cli.volume_cmds import add_commands

    add_commands(disk_app)  # disk kept|reattach|purge
    app.add_typer(cdrom_app, name="cdrom")
    app.add_typer(iso_app, name="iso")
    app.add_typer(disk_app, name="disk")
    app.add_typer(nic_app, name="nic")

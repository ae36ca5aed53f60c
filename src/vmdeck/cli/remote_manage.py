"""The customer's device, snapshot, clone and keyboard commands through a vmdeck server (cli layer):
`vmdeck --remote R set|cdrom|disk|nic|snapshot|clone|send-keys|type|backup ...`.

Each sends the REST call the web UI sends (the server runs the same use case as the in-process command:
policy, quotas, audit) and prints the answer as the in-process command prints its result: the use
case's message, or with --json the same data (the API answers the result's fields), so the output, the
--json shape and the exit codes are the same here and there. Only the arguments that name a file on
this machine differ: an ISO is a name in the server's ISO library, as in `create --cdrom`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import typer

from vmdeck.cli.output import out, print_json
from vmdeck.cli.remote_client import RemoteClient

__all__ = ["register"]

_JSON = typer.Option(False, "--json", help="Print the result as JSON.")
cdrom_app = typer.Typer(help="CD/DVD drives and their media (ISOs of the server's library).", no_args_is_help=True)
disk_app = typer.Typer(help="Disks: add, remove, resize.", no_args_is_help=True)
nic_app = typer.Typer(help="Network interfaces: add, remove.", no_args_is_help=True)
snapshot_app = typer.Typer(help="Snapshots of a VM, as a tree.", no_args_is_help=True)


def _api() -> RemoteClient:
    from vmdeck.cli.remote_run import _api as api  # set by vmdeck.cli.remote_run.run

    return api()


def _vm(name: str, *rest: str) -> str:
    return "/".join([f"/api/vms/{quote(name, safe='')}", *(quote(part, safe="") for part in rest)])


def _report(reply: dict[str, Any], as_json: bool, *, markup: bool = False) -> None:
    """A use case's result as the in-process command prints it: its message, or all of it as JSON."""
    if as_json:
        print_json(reply)
    else:
        out.print(reply["message"], markup=markup)


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def set_(name: str, cpus: int = typer.Option(None, "--cpus", help="New vCPU count."),
         memory: int = typer.Option(None, "--memory", help="New memory in MiB."), as_json: bool = _JSON) -> None:
    """Change a VM's vCPUs and/or memory (a running VM gets them at its next boot)."""
    change = _api().request("PATCH", _vm(name), _drop_none({"vcpus": cpus, "memory_mib": memory}))
    if as_json:
        print_json({"vm": name, "vcpus": change["vcpus"], "memory_mib": change["memory_mib"],
                    "applies": change["applies"]})
        return
    out.print(f"{name}: {change['vcpus']} vCPU, {change['memory_mib']} MiB, applies {change['applies']}")


@cdrom_app.command("insert")
def cdrom_insert(name: str = typer.Argument(..., help="The VM."),
                 iso: str = typer.Argument(..., help="Name of an ISO in the server's ISO library."),
                 drive: str = typer.Option(None, "--drive", help="Drive target (sda, hdc ...); default: the first drive."),
                 as_json: bool = _JSON) -> None:
    """Insert an ISO into a CD/DVD drive (live on a running VM, and for the next boot)."""
    _report(_api().request("POST", _vm(name, "media"), _drop_none({"iso": iso, "drive": drive})), as_json)


@cdrom_app.command("eject")
def cdrom_eject(name: str = typer.Argument(..., help="The VM."),
                drive: str = typer.Option(None, "--drive", help="Drive target; default: the first drive."),
                force: bool = typer.Option(False, "--force", help="Eject even if the guest has locked the tray."),
                as_json: bool = _JSON) -> None:
    """Eject the media from a CD/DVD drive (the ISO is kept)."""
    query = urlencode(_drop_none({"drive": drive, "force": str(force).lower()}))
    _report(_api().request("DELETE", f"{_vm(name, 'media')}?{query}"), as_json)


@cdrom_app.command("add")
def cdrom_add(name: str = typer.Argument(..., help="The VM."),
              bus: str = typer.Option(None, "--bus", help="scsi, sata or ide; default: what the machine type has."),
              iso: str = typer.Option(None, "--iso", help="Put this ISO of the server's library in the new drive."),
              as_json: bool = _JSON) -> None:
    """Add a CD/DVD drive (it appears at the VM's next boot)."""
    _report(_api().request("POST", _vm(name, "cdroms"), _drop_none({"bus": bus, "iso": iso})), as_json)


@disk_app.command("add")
def disk_add(name: str = typer.Argument(..., help="The VM."),
             size: float = typer.Option(..., "--size", help="Size of the new volume in GiB."),
             bus: str = typer.Option("virtio", "--bus", help="virtio (hot-plug), scsi (hot-plug), sata or ide."),
             fmt: str = typer.Option("qcow2", "--format", help="qcow2 or raw."), as_json: bool = _JSON) -> None:
    """Create a new volume and plug it in (deleted with the VM)."""
    _report(_api().request("POST", _vm(name, "disks"), {"size_gib": size, "bus": bus, "format": fmt}), as_json)


@disk_app.command("remove")
def disk_remove(name: str = typer.Argument(..., help="The VM."),
                target: str = typer.Argument(..., help="The disk's target (vdb, sda ...), as `vmdeck show` lists it."),
                delete_volume: bool = typer.Option(False, "--delete-volume",
                                                   help="Also delete the volume, if vmdeck created it for this VM."),
                as_json: bool = _JSON) -> None:
    """Unplug a disk (live where the bus allows)."""
    query = urlencode({"delete_volume": str(delete_volume).lower()})
    _report(_api().request("DELETE", f"{_vm(name, 'disks', target)}?{query}"), as_json)


@disk_app.command("resize")
def disk_resize(name: str = typer.Argument(..., help="The VM."),
                target: str = typer.Argument(..., help="The disk's target (vda, vdb ...)."),
                size: float = typer.Argument(..., help="New size in GiB (only growing is allowed)."),
                as_json: bool = _JSON) -> None:
    """Grow a disk (live on a running VM)."""
    _report(_api().request("POST", _vm(name, "disks", target, "resize"), {"size_gib": size}), as_json)


@nic_app.command("add")
def nic_add(name: str = typer.Argument(..., help="The VM."),
            model: str = typer.Option("virtio", "--model", help="virtio, e1000, e1000e or rtl8139."),
            network: str = typer.Option("user", "--network", help="'user' (QEMU user networking) or a network."),
            mac: str = typer.Option(None, "--mac", help="MAC address (default: a random 52:54:00:xx:xx:xx)."),
            as_json: bool = _JSON) -> None:
    """Add a network interface."""
    _report(_api().request("POST", _vm(name, "nics"), _drop_none({"model": model, "network": network, "mac": mac})),
            as_json)


@nic_app.command("remove")
def nic_remove(name: str = typer.Argument(..., help="The VM."),
               mac: str = typer.Argument(..., help="The NIC's MAC address, as `vmdeck show` lists it."),
               as_json: bool = _JSON) -> None:
    """Remove a network interface."""
    _report(_api().request("DELETE", _vm(name, "nics", mac)), as_json)


@snapshot_app.command("create")
def snapshot_create(name: str = typer.Argument(..., help="The VM."),
                    snap: str = typer.Argument(None, help="Snapshot name (default: snap-DATE-TIME)."),
                    description: str = typer.Option("", "--description", help="A note kept with the snapshot."),
                    memory: bool = typer.Option(False, "--memory", help="Also save memory and device state."),
                    quiesce: bool = typer.Option(False, "--quiesce", help="Freeze the guest's filesystems around it."),
                    as_json: bool = _JSON) -> None:
    """Take a snapshot: every writable disk goes on a new overlay; the old image is frozen."""
    body = _drop_none({"name": snap, "description": description, "memory": memory, "quiesce": quiesce})
    _report(_api().request("POST", _vm(name, "snapshots"), body), as_json, markup=True)


@snapshot_app.command("list")
def snapshot_list(name: str = typer.Argument(..., help="The VM."), as_json: bool = _JSON) -> None:
    """The VM's snapshots as a tree; `*` marks the one its present state descends from."""
    from vmdeck.cli.vm_views import render_snapshots
    from vmdeck.vm.snapshots import SnapshotTree

    render_snapshots(name, SnapshotTree.from_dict(_api().request("GET", _vm(name, "snapshots"))), as_json)


@snapshot_app.command("revert")
def snapshot_revert(name: str = typer.Argument(..., help="The VM."),
                    snap: str = typer.Argument(..., help="The snapshot to go back to."), as_json: bool = _JSON) -> None:
    """Go back to a snapshot (the present state is discarded; the VM stays off unless it has memory state)."""
    _report(_api().request("POST", _vm(name, "snapshots", snap, "revert")), as_json, markup=True)


@snapshot_app.command("delete")
def snapshot_delete(name: str = typer.Argument(..., help="The VM."),
                    snap: str = typer.Argument(..., help="The snapshot to delete (its data is merged, never lost)."),
                    as_json: bool = _JSON) -> None:
    """Delete a snapshot: merge its overlay into its frozen image, or drop a branch nothing uses."""
    _report(_api().request("DELETE", _vm(name, "snapshots", snap)), as_json, markup=True)


def clone(source: str = typer.Argument(..., help="The VM to clone."),
          new: str = typer.Argument(..., help="Name of the new VM."),
          linked: bool = typer.Option(False, "--linked", help="Share the source's disks as a read-only backing file."),
          start_now: bool = typer.Option(False, "--start", help="Start the clone."), as_json: bool = _JSON) -> None:
    """Copy a VM into its project: new UUID, MAC addresses, NVRAM and cloud-init instance-id."""
    api = _api()
    api.timeout = 3600.0  # a full copy of a large disk takes a while
    _report(api.request("POST", _vm(source, "clone"), {"name": new, "linked": linked, "start": start_now}), as_json,
            markup=True)


def send_keys(name: str = typer.Argument(None, help="The VM."),
              keys: list[str] = typer.Argument(None, help="Keys or combinations, pressed in turn: ctrl-alt-delete enter"),
              list_keys: bool = typer.Option(False, "--list", help="List the key names and exit.")) -> None:
    """Press keys or key combinations on the VM's keyboard."""
    from vmdeck.errors import InvalidInput

    if list_keys:
        from vmdeck.console.keys import key_names

        out.print(" ".join(key_names()), markup=False)
        return
    if not name:
        raise InvalidInput("send-keys needs a VM name and keys (or --list)")
    if not keys:  # as in-process: nothing pressed (the API wants at least one key)
        out.print(f"{name}: sent 0 key presses", markup=False)
        return
    sent = _api().request("POST", _vm(name, "keys"), {"keys": keys})["pressed"]
    out.print(f"{name}: sent {sent} key press{'es' if sent != 1 else ''}", markup=False)


def type_(name: str = typer.Argument(..., help="The VM."),
          text: str = typer.Argument(..., help=r"Text to type; \n is Enter, \t is Tab."),
          raw: bool = typer.Option(False, "--raw", help=r"Type backslashes literally (no \n \t escapes).")) -> None:
    """Type text on the VM's keyboard (US layout)."""
    if not raw:
        text = text.replace("\\\\", "\x00").replace("\\n", "\n").replace("\\t", "\t").replace("\x00", "\\")
    count = _api().request("POST", _vm(name, "type"), {"text": text})["pressed"]
    out.print(f"{name}: typed {count} key{'s' if count != 1 else ''}", markup=False)


backup_app = typer.Typer(help="Backups of your VMs in the server's repository.", no_args_is_help=True)


@backup_app.command("create")
def backup_create(name: str = typer.Argument(..., help="The VM (running, paused or shut off)."),
                  full: bool = typer.Option(False, "--full", help="Start a new full chain."),
                  quiesce: bool = typer.Option(False, "--quiesce", help="Freeze the guest's filesystems as it starts."),
                  as_json: bool = _JSON) -> None:
    """Back up a VM: incremental when its chain can continue, full otherwise (saying why)."""
    api = _api()
    api.timeout = 6 * 3600.0  # the copy of a large disk; the server answers when the backup is complete
    _report(api.request("POST", _vm(name, "backups"), {"full": full, "quiesce": quiesce}), as_json)


@backup_app.command("list")
def backup_list(name: str = typer.Argument(None, help="Only this VM's backups."), as_json: bool = _JSON) -> None:
    """The backups you may see, oldest first."""
    from vmdeck.cli.backup_cmds import render_backups

    query = f"?{urlencode({'vm': name})}" if name else ""
    render_backups(_api().request("GET", f"/api/backups{query}"), name, as_json)


@backup_app.command("restore")
def backup_restore(backup_id: str = typer.Argument(..., metavar="ID", help="The backup."),
                   as_name: str = typer.Option(None, "--as", help="Restore as a new VM of this name."),
                   force: bool = typer.Option(False, "--force", help="In place: power the running VM off first."),
                   as_json: bool = _JSON) -> None:
    """Restore a backup as a new VM, or in place of its VM (refused while it runs unless --force)."""
    api = _api()
    api.timeout = 6 * 3600.0
    _report(api.request("POST", f"/api/backups/{quote(backup_id, safe='')}/restore",
                        _drop_none({"as_name": as_name, "force": force})), as_json)


@backup_app.command("show")
def backup_show(backup_id: str = typer.Argument(..., metavar="ID", help="The backup."), as_json: bool = _JSON) -> None:
    """One backup: its files, chain and why it is full or incremental."""
    from vmdeck.cli.backup_cmds import render_backup

    render_backup(_api().request("GET", f"/api/backups/{quote(backup_id, safe='')}"), as_json)


@backup_app.command("verify")
def backup_verify(backup_id: str = typer.Argument(..., metavar="ID", help="The backup (and those it builds on)."),
                  as_json: bool = _JSON) -> None:
    """Check the sha256 of every file and manifest the backup needs; exit 4 when anything is damaged."""
    from vmdeck.cli.backup_cmds import render_verify

    api = _api()
    api.timeout = 6 * 3600.0  # every byte of the chain is read
    found = api.request("POST", f"/api/backups/{quote(backup_id, safe='')}/verify")
    message = found.pop("message")
    render_verify(found, message, as_json)


@backup_app.command("prune")
def backup_prune(name: str = typer.Argument(..., help="The VM whose backups to prune."),
                 keep_last: int = typer.Option(..., "--keep-last", help="Keep the newest N backups."),
                 keep_daily: int = typer.Option(0, "--keep-daily", help="Also keep the newest of each of the last D days."),
                 keep_weekly: int = typer.Option(0, "--keep-weekly", help="Also keep the newest of each of the last W weeks."),
                 as_json: bool = _JSON) -> None:
    """Remove old backups; a kept incremental whose ancestors go is made self-contained first."""
    api = _api()
    api.timeout = 6 * 3600.0
    report = api.request("POST", _vm(name, "backups", "prune"),
                         {"keep_last": keep_last, "keep_daily": keep_daily, "keep_weekly": keep_weekly})
    message = report.pop("message")  # the in-process --json is the report's fields
    print_json(report) if as_json else out.print(message, markup=False)


@backup_app.command("schedule")
def backup_schedule(name: str = typer.Argument(..., help="The VM."),
                    every: str = typer.Option(None, "--every", help="How often: 30m, 6h, 2d, hourly, daily, weekly."),
                    keep: int = typer.Option(None, "--keep", "--keep-last", help="Keep the newest N backups."),
                    keep_daily: int = typer.Option(0, "--keep-daily", help="Also keep the newest of each of the last D days."),
                    keep_weekly: int = typer.Option(0, "--keep-weekly", help="Also keep the newest of each of the last W weeks."),
                    remove: bool = typer.Option(False, "--remove", help="Remove the VM's schedule.")) -> None:
    """Back a VM up on a schedule, run by the server."""
    from vmdeck.cli.backup_cmds import render_schedule
    from vmdeck.errors import InvalidInput

    if remove:
        _api().request("DELETE", _vm(name, "backups", "schedule"))
        out.print(f"{name}: backup schedule removed", markup=False)
        return
    if every is None or keep is None:
        raise InvalidInput("say --every (e.g. 6h or daily) and --keep N")
    made = _api().request("PUT", _vm(name, "backups", "schedule"), {"every": every, "keep_last": keep,
                                                                "keep_daily": keep_daily, "keep_weekly": keep_weekly})
    render_schedule(name, every, made["keep_last"], keep_daily, keep_weekly)


def register(app: typer.Typer) -> None:
    app.command("set")(set_)
    app.add_typer(cdrom_app, name="cdrom")
    app.add_typer(disk_app, name="disk")
    app.add_typer(nic_app, name="nic")
    app.add_typer(snapshot_app, name="snapshot")
    app.command("clone")(clone)
    app.command("send-keys")(send_keys)
    app.command("type")(type_)
    app.add_typer(backup_app, name="backup")

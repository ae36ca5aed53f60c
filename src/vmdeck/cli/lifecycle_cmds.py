"""`vmdeck create|start|list|show|shutdown|poweroff|reboot|reset|pause|resume|delete|exec`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer

from vmdeck.cli.output import info, out, print_json, progress_reporter
from vmdeck.cli.vm_views import render_list, render_show
from vmdeck.vm.inventory import list_vms, show_vm
from vmdeck.vm.state import POWER_VERBS, PowerVerb

# Template resolution (pydantic models), creation and device tables are imported inside the
# commands that need them: `vmdeck list` stays quick to start.

def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the new VM."),
    template: str = typer.Option(None, "--template", "-t",
                                 help="Template (base form) to start from (default: tiny; with --image, "
                                      "debian-12 or debian-12-arm64 by the image's arch)."),
    cpus: int = typer.Option(None, "--cpus", help="vCPUs (overrides the template)."),
    memory: int = typer.Option(None, "--memory", help="Memory in MiB."),
    disk: float = typer.Option(None, "--disk", help="Size of the first disk in GiB."),
    cdrom: Path = typer.Option(None, "--cdrom", help="ISO to insert in the first CD/DVD drive."),
    accel: str = typer.Option(None, "--accel", help="auto (KVM when the probe passes), kvm or tcg."),
    network: str = typer.Option(None, "--network", help="'user' or a libvirt network name for every NIC."),
    image: str = typer.Option(None, "--image", help="Library image the disk is a linked clone of (debian-12, debian-12-arm64)."),
    ssh_key: list[Path] = typer.Option(None, "--ssh-key", help="Public key file for the user (repeatable)."),
    user: str = typer.Option(None, "--user", help="User cloud-init creates (default: debian)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the user's password from stdin."),
    hostname: str = typer.Option(None, "--hostname", help="Guest hostname (default: from the VM name)."),
    user_data: Path = typer.Option(None, "--user-data", help="Your #cloud-config file (merged with the above)."),
    network_config: Path = typer.Option(None, "--network-config", help="cloud-init network config file."),
    project: str = typer.Option(None, "--project", help="Project of the VM, held to its quotas (default: "
                                "'default', created on first use)."),
    start_now: bool = typer.Option(False, "--start", help="Start the VM once created."),
    wait: bool = typer.Option(False, "--wait", help="With --start: wait until the guest is ready."),
    fix_perms: bool = typer.Option(False, "--fix-permissions",
                                   help="Grant the QEMU user search permission (an ACL) on folders above --cdrom."),
    as_json: bool = typer.Option(False, "--json", help="Print the created VM as JSON."),
    on_host: str = typer.Option(None, "--host", help="Registered host to create it on, or 'auto' (default): "
                                                     "the host with the most free memory that fits it."),
    tpm: bool = typer.Option(False, "--tpm", help="Give the VM an emulated TPM 2.0 (swtpm)."),
) -> None:
    """Create a VM from a template, with overrides, on the host placement picks (or --host)."""
    from vmdeck.cli.stores import services
    from vmdeck.errors import InvalidInput
    from vmdeck.spec.templates import Overrides, resolve
    from vmdeck.usecases import Actor
    from vmdeck.usecases import vms as vm_cases

    if template is None and image:
        from vmdeck.images.library import default_template

        template = default_template(image)
    template = template or "tiny"
    spec = resolve(template, name, Overrides(vcpus=cpus, memory_mib=memory, disk_gib=disk, cdrom=cdrom,
                                             accel=accel, network=network, image=image, tpm=tpm or None))
    cloud_init = None
    seeded = (ssh_key, user, password_stdin, hostname, user_data, network_config)
    if any(seeded):
        from vmdeck.storage.seed import cloud_init_config, read_text_file

        if not any(d.image for d in spec.disks):
            raise InvalidInput("--ssh-key, --user, --password-stdin, --hostname, --user-data and --network-config "
                               "need a disk from a cloud image (--image NAME)")
        password = sys.stdin.readline().rstrip("\n") if password_stdin else None
        cloud_init = cloud_init_config(
            name, hostname=hostname, user=user, password=password,
            ssh_keys=[(str(k), read_text_file(k, "ssh key")) for k in ssh_key or []],
            user_data=read_text_file(user_data, "user-data") if user_data else None,
            network_config=read_text_file(network_config, "network-config") if network_config else None)
    single = ctx.obj.single_host() and on_host in (None, "auto")
    local = ctx.obj.host() if single else None
    if fix_perms:
        from vmdeck.cli.device_cmds import fix_permissions

        fix_permissions(local or ctx.obj.host(), cdrom)
    with progress_reporter(f"creating {name}") as progress:
        # Placement (several hosts: the room stays held until the VM runs), the project's quota and the
        # audit line: the same use case as the API's.
        made = vm_cases.create(services(None if single else ctx.obj.fleet()), Actor.cli(f"create {name}"), spec,
                               local=local, project=project,
                               on_host=on_host if on_host not in (None, "auto") else ctx.obj.host_name,
                               cloud_init=cloud_init, start=start_now, wait=wait, progress=progress)
    host, view = made.host, made.view
    placed_on = f" on host {made.host_name}" if made.host_name else ""
    if as_json:
        print_json(show_vm(host, name).to_dict())
        return
    accel_name = "KVM" if view.domain_type == "kvm" else "TCG"
    out.print(f"created [bold]{name}[/bold] from template {template}: {view.vcpus} vCPU, "
              f"{view.memory_mib} MiB, {accel_name}" + (", started" if start_now else "") + placed_on)


def start(
    ctx: typer.Context,
    names: list[str] = typer.Argument(..., help="The VM, or several: all start at once (a boot storm), "
                                                "and --wait returns when every guest is ready."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the guest (every guest) is ready."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait with --wait."),
) -> None:
    """Start (power on) a VM."""  # the core's POWER_VERBS help; several names are described above
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor
    from vmdeck.usecases import vms as vm_cases

    host = ctx.obj.host()
    actor = Actor.cli(f"start {' '.join(names)}")
    with progress_reporter(f"starting {' '.join(names)}") as progress:
        if len(names) == 1:
            vm_cases.start(command_services(ctx.obj), actor, host, names[0], wait=wait, timeout=timeout,
                           progress=progress)
        else:
            vm_cases.start_many(command_services(ctx.obj), actor, host, names, wait=wait, timeout=timeout,
                                progress=progress)
    for name in dict.fromkeys(names):
        out.print(f"{name} started" + (" and ready" if wait else ""))


def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json"),
          deadline: float = typer.Option(None, "--deadline", help="Seconds to wait for each host "
                                                                   "(several hosts; default 15).")) -> None:
    """List every VM on every registered host (one bulk query per host, all hosts at once)."""
    unreachable: dict[str, str] = {}
    if ctx.obj.single_host():
        # The table shows no RSS: no QEMU monitor round trips.
        vms = list_vms(ctx.obj.host(), usage=as_json)
    else:
        from vmdeck.cluster.inventory import list_everywhere

        listed = list_everywhere(ctx.obj.fleet(), deadline=deadline)
        vms, unreachable = listed.vms, listed.unreachable
    render_list(vms, unreachable, as_json)


def _show_qemu_cmdline(ctx: typer.Context, name: str, as_json: bool) -> None:
    from vmdeck.errors import StateError
    from vmdeck.hostview.process import cmdline_options, qemu_cmdline, read_libvirt_record
    from vmdeck.vm.state import ACTIVE_STATES, current_state

    host = ctx.obj.host()
    dom = host.lookup(name)
    record = read_libvirt_record(name) if host.is_local else None
    argv = qemu_cmdline(record.pid) if record is not None and record.pid else []
    if current_state(dom) not in ACTIVE_STATES or not argv:
        raise StateError(name, str(current_state(dom)), "running on this host", "show the QEMU command line of")
    if as_json:
        print_json({"name": name, "pid": record.pid if record else None, "qemu_cmdline": argv})
        return
    out.print("\n".join(cmdline_options(argv)), highlight=False, markup=False, soft_wrap=True)


def show(ctx: typer.Context, name: str, as_json: bool = typer.Option(False, "--json"),
         qemu_cmdline: bool = typer.Option(False, "--qemu-cmdline",
                                           help="The running QEMU's command line, one option per line.")) -> None:
    """Show one VM: settings, state and devices."""
    from vmdeck.vm.devices import device_table

    if qemu_cmdline:
        _show_qemu_cmdline(ctx, name, as_json)
        return

    details = show_vm(ctx.obj.host(), name).to_dict()
    details["devices"] = device_table(ctx.obj.host(), name)  # live, or pending until the next boot
    render_show(details, as_json)


def shutdown(
    ctx: typer.Context,
    name: str,
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the guest."),
    force: bool = typer.Option(False, "--force", help="Power off if the guest does not shut down in time."),
) -> None:
    """Shut a VM down through ACPI (the guest's own power-button handling)."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor
    from vmdeck.usecases import vms as vm_cases

    with progress_reporter(f"shutting down {name}") as progress:
        how = vm_cases.shutdown(command_services(ctx.obj), Actor.cli(f"shutdown {name}"), ctx.obj.host(), name,
                                timeout=timeout, force=force, progress=progress)
    out.print(f"{name}: {how}")


def _power_command(verb: PowerVerb) -> Callable[[typer.Context, str], None]:
    """The CLI command for a power verb without options, from the core's table."""
    def command(ctx: typer.Context, name: str) -> None:
        from vmdeck.cli.stores import command_services
        from vmdeck.usecases import Actor
        from vmdeck.usecases import vms as vm_cases

        outcome = vm_cases.power(command_services(ctx.obj), Actor.cli(f"{verb.name} {name}"), ctx.obj.host(), name,
                                 verb.name)
        out.print(f"{name}: {outcome}" if outcome else verb.outcome.format(name=name))

    command.__doc__ = verb.help
    command.__name__ = verb.name
    return command


def delete(
    ctx: typer.Context,
    name: str,
    force: bool = typer.Option(False, "--force", help="Power the VM off first if it runs."),
    keep_disks: bool = typer.Option(False, "--keep-disks", help="Keep the volumes vmdeck created for it."),
) -> None:
    """Delete a VM and the disks vmdeck created for it (never ISOs or images you brought)."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor
    from vmdeck.usecases import vms as vm_cases

    with progress_reporter(f"deleting {name}") as progress:
        removed = vm_cases.delete(command_services(ctx.obj), Actor.cli(f"delete {name}"), ctx.obj.host(), name,
                                  force=force, keep_disks=keep_disks, progress=progress)
    out.print(f"deleted {name}" + (f" and {len(removed)} volume(s)" if removed else ""))


def exec_(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    command: list[str] = typer.Argument(..., help="Command and arguments (after --)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the command."),
) -> None:
    """Run a command in the guest (through its agent); exit with its status."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor
    from vmdeck.usecases.guest import exec_command

    result = exec_command(command_services(ctx.obj), Actor.cli(f"exec {name}"), ctx.obj.host(), name, command,
                          timeout=timeout)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    sys.stderr.flush()
    if result.signal:
        info(f"killed by signal {result.signal}")
    raise typer.Exit(result.exit_code)


def ssh(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The VM."),
    command: list[str] = typer.Argument(None, help="Command to run (after --); none: a login shell."),
    user: str = typer.Option(None, "--user", "-l", help="Log in as (default: the user cloud-init created)."),
    identity: Path = typer.Option(None, "--identity", "-i", help="Private key file."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for a booting guest's SSH server "
                                                            "(and cloud-init); 0: do not wait."),
) -> None:
    """SSH into the guest through its port forward on 127.0.0.1."""
    import os

    from vmdeck.vm.ssh import ssh_argv
    from vmdeck.vm.sshready import wait_reachable

    host = ctx.obj.host()
    argv = ssh_argv(host, name, user=user, identity=identity, command=command or [])
    if timeout > 0:
        # Right after a boot, sshd is not up (cloud-init still makes its host keys): wait for the
        # banner rather than let ssh(1) fail with "Connection reset by peer".
        wait_reachable(host, name, timeout, info)
    sys.stdout.flush()
    os.execv(argv[0], argv)  # an argument list, never a shell: ssh's exit status is ours


def set_(
    ctx: typer.Context,
    name: str,
    cpus: int = typer.Option(None, "--cpus", help="New vCPU count."),
    memory: int = typer.Option(None, "--memory", help="New memory in MiB."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Change a VM's vCPUs and/or memory (a running VM gets them at its next boot)."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor
    from vmdeck.usecases import vms as vm_cases

    # Growth is held to the VM's project's quotas, as through the API.
    change = vm_cases.set_resources(command_services(ctx.obj), Actor.cli(f"set {name}"), ctx.obj.host(), name,
                                    vcpus=cpus, memory_mib=memory)
    if as_json:
        print_json({"vm": name, "vcpus": change["vcpus"], "memory_mib": change["memory_mib"],
                    "applies": change["applies"]})
        return
    out.print(f"{name}: {change['vcpus']} vCPU, {change['memory_mib']} MiB, applies {change['applies']}")


def register(app: typer.Typer) -> None:
    app.command()(create)
    app.command()(start)
    app.command("list")(list_)
    app.command()(show)
    app.command()(shutdown)
    for verb in POWER_VERBS.values():
        if verb.name not in ("start", "shutdown"):  # those two take options: defined above
            app.command(verb.name)(_power_command(verb))
    app.command()(delete)
    app.command("set")(set_)
    app.command("exec")(exec_)
    app.command()(ssh)

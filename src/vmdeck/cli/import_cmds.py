"""`vmdeck import FILE`: a VM from an OVA, an OVF or a disk image made elsewhere (cli layer)."""

from __future__ import annotations

from pathlib import Path

import typer

from vmdeck.cli.output import out, print_json, progress_reporter


def _print_plan(plan: object) -> None:
    from vmdeck.vm.importer import ImportPlan

    assert isinstance(plan, ImportPlan)
    data = plan.to_dict()
    out.print(f"would create VM {data['name']} from {plan.source.name} ({data['kind']}):", markup=False)
    out.print(f"  template   {data['template']} (machine {data['machine']})" +
              (f" for {data['os']}" if data["os"] else ""), markup=False)
    out.print(f"  CPUs       {data['vcpus']}", markup=False)
    out.print(f"  memory     {data['memory_mib']} MiB", markup=False)
    out.print(f"  firmware   {data['firmware']}" + (" with Secure Boot" if data["secure_boot"] else ""), markup=False)
    if data["tpm"]:
        out.print("  TPM        2.0 (swtpm)", markup=False)
    for disk in data["disks"]:
        source = f" (was {disk['controller']})" if disk["controller"] else ""
        out.print(f"  disk       {disk['target']}: {disk['file']} ({disk['format']}), "
                  f"{disk['capacity_bytes'] / 1024**3:.2f} GiB on {disk['bus']}{source}", markup=False)
    for nic in data["nics"]:
        out.print(f"  NIC        {nic['model']} on {nic['network']}", markup=False)
    for cdrom in data["cdroms"]:
        out.print(f"  CD/DVD     empty, on {cdrom['bus']}", markup=False)
    if data["not_honoured"]:
        out.print("not honoured:", markup=False)
        for note in data["not_honoured"]:
            out.print(f"  - {note}", markup=False)


def import_(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="An .ova, an .ovf with its disks beside it, or a disk image "
                                          "(.vmdk, .vhdx, .vhd, .qcow2, .img)."),
    name: str = typer.Option(None, "--name", help="Name of the new VM (default: the OVF's name or the file's)."),
    project: str = typer.Option(None, "--project", help="Project of the VM, held to its quotas (default: "
                                                        "'default')."),
    on_host: str = typer.Option(None, "--host", help="Registered host to create it on, or 'auto'."),
    template: str = typer.Option(None, "--template", "-t", help="Template to start from (default: chosen from "
                                                                "the OVF's operating system)."),
    firmware: str = typer.Option(None, "--firmware", help="bios or uefi (default: what the source says)."),
    disk_bus: str = typer.Option(None, "--disk-bus", help="virtio, sata, ide or scsi for every disk."),
    nic_model: str = typer.Option(None, "--nic-model", help="virtio, e1000, e1000e or rtl8139 for every NIC."),
    plan_only: bool = typer.Option(False, "--plan", help="Print the VM it would create; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan (or the created VM) as JSON."),
) -> None:
    """Import a VM from VMware, VirtualBox or Hyper-V: its disks converted to qcow2 in the pool."""
    from vmdeck.errors import InvalidInput
    from vmdeck.vm.importer import ImportOptions, plan_import

    choices = {"--firmware": (firmware, ("bios", "uefi")), "--disk-bus": (disk_bus, ("virtio", "sata", "ide", "scsi")),
               "--nic-model": (nic_model, ("virtio", "e1000", "e1000e", "rtl8139"))}
    for option, (value, allowed) in choices.items():
        if value is not None and value not in allowed:
            raise InvalidInput(f"{option} {value!r}: use {', '.join(allowed)}")
    plan = plan_import(file, ImportOptions(name=name, template=template, firmware=firmware, disk_bus=disk_bus,
                                           nic_model=nic_model))
    if plan_only:
        if as_json:
            print_json(plan.to_dict())
        else:
            _print_plan(plan)
        return
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor
    from vmdeck.usecases.imports import import_vm
    from vmdeck.vm.inventory import show_vm

    spec = plan.spec
    services = command_services(ctx.obj)
    local = ctx.obj.host() if services.fleet is None else None
    with progress_reporter(f"importing {spec.name}") as progress:
        made = import_vm(services, Actor.cli(f"import {spec.name} from {plan.source.name}"), plan, local=local,
                         project=project, on_host=on_host if on_host not in (None, "auto") else ctx.obj.host_name,
                         progress=progress)
    host, view = made.host, made.view
    if as_json:
        print_json(show_vm(host, spec.name).to_dict())
        return
    out.print(f"imported [bold]{spec.name}[/bold] from {plan.source.name}: {view.vcpus} vCPU, {view.memory_mib} MiB, "
              f"{len(plan.disks)} disk(s), template {spec.template}")
    for note in plan.not_honoured:
        out.print(f"  not honoured: {note}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("import")(import_)

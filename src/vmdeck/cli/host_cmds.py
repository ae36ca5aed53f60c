"""`vmdeck host check|add|list|remove|drain|undrain`: this host's capabilities and the host registry."""

from __future__ import annotations

import dataclasses

import typer
from rich.table import Table

from vmdeck.cli.output import info, out, print_json, progress_reporter

host_app = typer.Typer(help="Hosts: capabilities, KVM, and the registry of hosts this vmdeck manages.",
                       no_args_is_help=True)


@host_app.command()
def check(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    refresh: bool = typer.Option(False, "--refresh", help="Probe KVM again instead of using the cached verdict."),
) -> None:
    """Report virtualization extensions, /dev/kvm, whether KVM can run a guest, versions and arches."""
    from vmdeck.host.accel import probe_kvm
    from vmdeck.host.capabilities import host_facts

    host = ctx.obj.host()
    facts = host_facts(host)
    with progress_reporter("probing KVM") as _progress:
        verdict = probe_kvm(host, refresh=refresh, facts=facts)
    report = {**dataclasses.asdict(facts), "kvm_usable": verdict.usable, "kvm_reason": verdict.reason,
              "default_accel": "kvm" if verdict.usable else "tcg"}
    if as_json:
        print_json(report)
        return
    yes = "[green]yes[/green]"
    no = "[red]no[/red]"
    out.print(f"[bold]{facts.hostname}[/bold] ({facts.uri}): {facts.cpu_vendor} {facts.cpu_model}, "
              f"{facts.pcpus} CPUs, {facts.memory_mib} MiB")
    out.print(f"  CPU virtualization extensions: {', '.join(facts.virt_extensions) or 'none'}")
    out.print(f"  /dev/kvm: {yes if facts.kvm_device else no}  (module {facts.kvm_module or '-'})")
    out.print(f"  KVM usable: {yes if verdict.usable else no}  ({verdict.reason})")
    out.print(f"  new VMs with --accel auto use: {'KVM' if verdict.usable else 'TCG (QEMU emulates the CPU)'}")
    out.print(f"  QEMU {facts.qemu_version}, libvirt {facts.libvirt_version}")
    arches = ", ".join(f"{arch} ({'/'.join('KVM' if t == 'kvm' else 'TCG' for t in types)})"
                       for arch, types in sorted(facts.emulated_arches.items()))
    out.print(f"  can run: {arches}")


@host_app.command("add")
def add(
    name: str = typer.Argument(..., help="Short name for the host (used by --host and in `vmdeck list`)."),
    uri: str = typer.Argument(..., help="libvirt URI, e.g. qemu+ssh://host2/system or qemu+tcp://10.0.0.2/system."),
    vcpu_ratio: float = typer.Option(4.0, "--vcpu-ratio", help="vCPUs that may be allocated per physical CPU."),
    reserve_mib: int = typer.Option(512, "--reserve-mib", help="Memory kept for the host itself (MiB)."),
    no_check: bool = typer.Option(False, "--no-check", help="Register it even if it does not answer now."),
) -> None:
    """Register a libvirt host (it must answer, unless --no-check)."""
    from vmdeck.cli.stores import services
    from vmdeck.cluster.registry import HostEntry, Registry
    from vmdeck.usecases import Actor
    from vmdeck.usecases.hosts import add_host

    # InvalidInput (exit 2) with libvirt's reason when the host does not answer.
    add_host(services(), Actor.cli(f"host add {name}"), Registry(), HostEntry(name, uri, vcpu_ratio, reserve_mib),
             check=not no_check)
    out.print(f"registered host [bold]{name}[/bold] ({uri}): vCPU ratio {vcpu_ratio:g}, {reserve_mib} MiB reserved",
              highlight=False)


@host_app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json"),
    deadline: float = typer.Option(None, "--deadline", help="Seconds to wait for each host (default 15)."),
) -> None:
    """Every registered host: reachable or why not, CPUs and memory allocated, VMs running, versions."""
    from vmdeck.cluster.fleet import Fleet
    from vmdeck.cluster.inventory import host_reports

    with Fleet() as fleet:
        rows = host_reports(fleet, deadline=deadline)
    if as_json:
        print_json(rows)
        return
    table = Table("HOST", "STATUS", "pCPUs", "vCPUs", "MiB USED", "MiB FREE", "VMs", "LIBVIRT", "QEMU", "KVM",
                  box=None, header_style="bold")
    for row in rows:
        if not row.reachable:
            status = "[red]unreachable[/red]"
        elif row.draining:
            status = "[yellow]draining[/yellow]"
        else:
            status = "[green]up[/green]"
        kvm = "?" if row.kvm_usable is None else ("yes" if row.kvm_usable else "no")
        reachable = row.reachable
        table.add_row(row.name, status, str(row.pcpus) if reachable else "-",
                      f"{row.vcpus_allocated}/{row.vcpu_limit}" if reachable else "-",
                      f"{row.memory_allocated_mib}/{row.memory_mib}" if reachable else "-",
                      str(row.memory_free_mib) if reachable else "-", str(row.vms_running) if reachable else "-",
                      row.libvirt_version or "-", row.qemu_version or "-", kvm)
    out.print(table)
    for row in rows:
        if not row.reachable:
            out.print(f"[red]{row.name}[/red] ({row.uri}): {row.reason}", highlight=False)
        if row.pending_mib or row.pending_vcpus:
            out.print(f"{row.name}: {row.pending_mib} MiB and {row.pending_vcpus} vCPU held for creates in progress "
                      "(counted as used until their VMs run)", highlight=False)


@host_app.command("remove")
def remove(name: str = typer.Argument(..., help="Registered host name.")) -> None:
    """Forget a host (its VMs keep running there; vmdeck just stops managing it)."""
    from vmdeck.cli.stores import services
    from vmdeck.cluster.registry import Registry
    from vmdeck.usecases import Actor
    from vmdeck.usecases.hosts import remove_host

    entry = remove_host(services(), Actor.cli(f"host remove {name}"), Registry(), name)
    out.print(f"removed host {entry.name} ({entry.connect_uri}) from the registry", highlight=False)


@host_app.command("drain")
def drain(
    name: str = typer.Argument(..., help="Registered host name."),
    timeout: float = typer.Option(None, "--timeout", help="Cancel any one live migration after this many seconds."),
) -> None:
    """Stop placing VMs on a host and move every VM off it, one at a time (live when running)."""
    from vmdeck.cli.stores import services
    from vmdeck.cluster.fleet import Fleet
    from vmdeck.cluster.registry import Registry
    from vmdeck.usecases import Actor
    from vmdeck.usecases.hosts import drain as drain_host

    with Fleet() as fleet, progress_reporter(f"draining {name}") as progress:
        report = drain_host(services(fleet), Actor.cli(f"host drain {name}"), fleet, Registry(), name, timeout=timeout,
                            progress=progress)
    for vm, dest in report.moved.items():
        out.print(f"{vm}: moved to {dest}", highlight=False)
    for vm, why in report.failed.items():
        out.print(f"[red]{vm}: not moved[/red]: {why}", highlight=False)
    out.print(f"host {name} is draining: {len(report.moved)} VM(s) moved, {len(report.failed)} left")
    if not report.complete:
        info("the VMs left keep running where they are; `vmdeck host undrain` takes the host back")
        raise typer.Exit(4)


@host_app.command("undrain")
def undrain(name: str = typer.Argument(..., help="Registered host name.")) -> None:
    """Let placement use a drained host again."""
    from vmdeck.cli.stores import services
    from vmdeck.cluster.registry import Registry
    from vmdeck.usecases import Actor
    from vmdeck.usecases.hosts import undrain as undrain_host

    undrain_host(services(), Actor.cli(f"host undrain {name}"), Registry(), name)
    out.print(f"host {name} takes new VMs again")


def register(app: typer.Typer) -> None:
    app.add_typer(host_app, name="host")

"""`vmdeck host check`: what this host can run, and whether KVM really works."""

from __future__ import annotations

import dataclasses

import typer

from vmdeck.cli.output import out, print_json, progress_reporter
from vmdeck.host.accel import probe_kvm
from vmdeck.host.capabilities import host_facts

host_app = typer.Typer(help="The libvirt host: capabilities and acceleration.", no_args_is_help=True)


@host_app.command()
def check(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    refresh: bool = typer.Option(False, "--refresh", help="Probe KVM again instead of using the cached verdict."),
) -> None:
    """Report virtualization extensions, /dev/kvm, whether KVM can run a guest, versions and arches."""
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


def register(app: typer.Typer) -> None:
    app.add_typer(host_app, name="host")

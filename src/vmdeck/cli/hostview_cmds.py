"""`vmdeck hostview|pin|balloon`: how a VM looks from the host, and the knobs that change it (CLI layer).

Rendering only: the data comes from vmdeck.hostview.collect.Collector, the
same snapshots the API serves. --watch redraws in place with rich.live and
keeps a short history per series for the sparklines.
"""

from __future__ import annotations

import time
from collections import deque

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from vmdeck.cli.output import out, print_json
from vmdeck.errors import Conflict, InvalidInput
from vmdeck.hostview.collect import Collector, Snapshot, VmHostView

_BARS = "▁▂▃▄▅▆▇█"
_HISTORY = 30


def sparkline(values: list[float | None], top: float | None = None) -> str:
    """Eight-level unicode bars for `values` (None = no reading yet, shown as a space)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    ceiling = top if top is not None else max(known)
    if ceiling <= 0:
        return "".join(" " if v is None else _BARS[0] for v in values)
    return "".join(" " if v is None else _BARS[min(len(_BARS) - 1, int(v / ceiling * (len(_BARS) - 1) + 0.5))]
                   for v in values)


class History:
    """The last readings of each series ("vm/vcpu0", "vm/rss", "vm/disk"), for sparklines."""

    def __init__(self, length: int = _HISTORY) -> None:
        self.series: dict[str, deque[float | None]] = {}
        self.length = length

    def add(self, key: str, value: float | None) -> str:
        series = self.series.setdefault(key, deque(maxlen=self.length))
        series.append(value)
        return key

    def spark(self, key: str, top: float | None = None) -> str:
        return sparkline(list(self.series.get(key, ())), top)

    def record(self, snap: Snapshot) -> None:
        for vm in snap.vms:
            if vm.sched:
                for v in vm.sched.vcpus:
                    self.add(f"{vm.name}/vcpu{v.vcpu}", v.cpu_share_pct)
            if vm.memory:
                self.add(f"{vm.name}/rss", vm.memory.rss_kib)
            rates = [(d.read_bytes_per_s or 0) + (d.write_bytes_per_s or 0) for d in vm.disks
                     if d.read_bytes_per_s is not None]
            self.add(f"{vm.name}/disk", sum(rates) if rates else None)


def _mib(kib: int | float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:,.1f} MiB"


def _bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def _secs(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e9:,.2f} s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _kv_table() -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    return table


def _process(vm: VmHostView) -> list[RenderableType]:
    p = vm.process
    assert p is not None
    head = Text.assemble((f"{vm.name}", "bold"), f"  {vm.state}  {p.accelerator}  pid {p.pid}  user {p.user}  "
                         f"{p.binary}  started {p.started_at} (up {p.uptime_s:,.0f} s)")
    threads = Table("TID", "THREAD NAME", "WHAT IT DOES", "LIBVIRT vCPU", box=None, header_style="bold")
    for t in p.threads:
        threads.add_row(str(t.tid), t.name, t.label, "-" if t.libvirt_vcpu is None else str(t.libvirt_vcpu))
    vcpus = len(p.vcpu_threads)
    check = (f"[green]{vcpus} vCPU threads for {vm.vcpus} vCPUs; matches {p.thread_map_source}[/green]"
             if p.thread_map_ok else "[red]" + "; ".join(p.thread_map_problems) + "[/red]")
    return [head, Text("Process", style="bold underline"), threads, Text.from_markup("  " + check)]


def _sched(vm: VmHostView, history: History | None) -> list[RenderableType]:
    s = vm.sched
    assert s is not None
    table = Table("vCPU", "TID", "CPU (interval)", "USER", "SYSTEM", "RUN DELAY", "WAITED", "VOL/INVOL SW",
                  "LAST CPU", "ALLOWED", box=None, header_style="bold")
    for v in s.vcpus:
        share = _pct(v.cpu_share_pct)
        if history is not None:
            share = f"{share:>6} {history.spark(f'{vm.name}/vcpu{v.vcpu}', 100)}"
        table.add_row(str(v.vcpu), str(v.tid), share, _secs(v.user_time_ns), _secs(v.system_time_ns),
                      _secs(v.run_delay_ns), _pct(v.run_delay_pct), f"{v.voluntary_switches}/{v.involuntary_switches}",
                      str(v.last_cpu), v.cpus_allowed)
    oc = s.overcommit
    lines: list[RenderableType] = [
        Text("Scheduling" + (f" (last {s.interval_s:g} s)" if s.interval_s else ""), style="bold underline"),
        table,
        Text(f"  emulator threads (all but vCPUs): allowed CPUs {s.emulator_cpus_allowed}, "
             f"CPU {_pct(s.emulator_cpu_share_pct)}"),
        Text(f"  overcommit: {oc.running_vcpus} vCPUs of {oc.running_vms} running VMs on {oc.host_pcpus} host CPUs "
             f"= {oc.ratio:g} per CPU ({oc.explanation})"),
    ]
    return lines


def _memory(vm: VmHostView, snap: Snapshot, history: History | None) -> list[RenderableType]:
    m = vm.memory
    assert m is not None
    table = _kv_table()
    table.add_row("guest memory", f"{_mib(m.configured_kib)} configured, {_mib(m.current_kib)} current (balloon "
                  f"holds {_mib(m.configured_kib - m.current_kib)})")
    if m.guest_available_kib is not None:
        table.add_row("guest reports", f"{_mib(m.guest_available_kib)} total, {_mib(m.guest_unused_kib)} free")
    rss = f"{_mib(m.rss_kib)} = anon {_mib(m.rss_anon_kib)} + file {_mib(m.rss_file_kib)} + shmem {_mib(m.rss_shmem_kib)}"
    if history is not None:
        rss += f"  {history.spark(f'{vm.name}/rss')}"
    table.add_row("QEMU resident", rss)
    if m.pss_kib is not None:
        table.add_row("QEMU PSS", f"{_mib(m.pss_kib)} (shared pages divided among their users); swapped {_mib(m.swap_kib)}")
    if m.guest_ram_rss_kib is not None:
        table.add_row("guest RAM touched", f"{_mib(m.guest_ram_rss_kib)} of {_mib(m.guest_ram_mapping_kib)} "
                      f"({_pct(m.guest_ram_touched_pct)}), {_mib(m.guest_ram_huge_kib)} in transparent hugepages")
    if m.tcg_code_cache_rss_kib:
        table.add_row("TCG code cache", f"{_mib(m.tcg_code_cache_rss_kib)} resident (translated guest code)")
    if snap.host is None:  # a tenant's view through a server: the host is its administrator's business
        return [Text("Memory", style="bold underline"), table]
    h = snap.host.memory
    table.add_row("host", f"THP {h.thp_mode}; hugetlb pages {h.hugepages_free}/{h.hugepages_total} free "
                  f"({h.hugepage_size_kib} KiB); KSM {'on' if h.ksm_running else 'off'} "
                  f"({h.ksm_pages_sharing} pages sharing); swap {_mib(h.swap_total_kib)}")
    return [Text("Memory", style="bold underline"), table]


def _storage(vm: VmHostView, history: History | None) -> list[RenderableType]:
    table = Table("DISK", "IMAGE", "FORMAT", "VIRTUAL", "ON HOST", "CACHE/IO", "READ", "WRITTEN", "NOW R/W",
                  "IN PAGE CACHE", box=None, header_style="bold")
    notes = []
    for d in vm.disks:
        now = "-" if d.read_bytes_per_s is None else f"{_bytes(d.read_bytes_per_s)}/s / {_bytes(d.write_bytes_per_s)}/s"
        table.add_row(d.target, d.path or "(empty)", d.format or "-", _bytes(d.virtual_size_bytes),
                      _bytes(d.host_allocated_bytes), f"{d.cache}/{d.io}",
                      f"{_bytes(d.read_bytes)} ({d.read_reqs or 0} req)",
                      f"{_bytes(d.write_bytes)} ({d.write_reqs or 0} req)", now,
                      "-" if d.page_cache_bytes is None else f"{_bytes(d.page_cache_bytes)} ({_pct(d.page_cache_pct)})")
        if d.path:
            notes.append(f"  {d.target}: cache {d.cache}: {d.cache_meaning}; io {d.io}: {d.io_meaning}")
            chain = " <- ".join(f"{b.path} ({b.format or '?'})" for b in d.backing_chain)
            notes.append(f"  {d.target}: backing chain: {chain or 'none (a standalone image)'}")
    lines: list[RenderableType] = [Text("Storage", style="bold underline"), table]
    if history is not None:
        lines.append(Text(f"  disk I/O {history.spark(f'{vm.name}/disk')}"))
    if vm.tpm is not None:
        t = vm.tpm
        process = f"swtpm pid {t.swtpm_pid}, {_mib(t.swtpm_rss_kib)} resident" if t.swtpm_pid else "swtpm not running"
        state = f"{_bytes(t.state_bytes)} in {t.state_dir}" if t.state_bytes is not None else f"none yet ({t.state_dir})"
        notes.append(f"  TPM {t.version}: {process}; state {state}")
    return lines + [Text(n, style="dim") for n in notes]


def _cpu_mode(vm: VmHostView) -> list[RenderableType]:
    c = vm.cpu_mode
    assert c is not None
    table = _kv_table()
    table.add_row("host CPU", f"virtualization extensions: {', '.join(c.host_extensions) or 'none visible'}; "
                  f"/dev/kvm {'present' if c.kvm_device else 'absent'}; module {c.kvm_module or '-'}")
    table.add_row("this VM", f"{c.accelerator}: {c.why}")
    table.add_row("meaning", c.meaning)
    table.add_row("VM exits", c.exits_note)
    lines: list[RenderableType] = [Text("CPU mode", style="bold underline"), table]
    if c.exits:
        exits = Table("EXIT REASON", "SINCE START", "PER SECOND", box=None, header_style="bold")
        for name, total in c.exits.items():
            rate = c.exits_per_s.get(name)
            exits.add_row(name, f"{total:,}", "-" if rate is None else f"{rate:,.1f}")
        lines.append(exits)
    return lines


def render_vm(vm: VmHostView, snap: Snapshot, history: History | None = None) -> Group:
    if vm.error and vm.process is None:
        return Group(Text.assemble((vm.name, "bold"), "  ", (vm.error, "red")))
    parts: list[RenderableType] = []
    if vm.stale:
        parts.append(Text(f"STALE: {vm.error}", style="yellow"))
    for section in (_process(vm), _sched(vm, history), _memory(vm, snap, history), _storage(vm, history),
                    _cpu_mode(vm)):
        parts.extend(section)
        parts.append(Text(""))
    parts.append(Text(f"collected in {snap.collect_ms:g} ms", style="dim"))
    return Group(*parts)


def render_many(snap: Snapshot, history: History | None = None) -> Table:
    table = Table("VM", "STATE", "PID", "vCPU CPU%", "RSS", "GUEST RAM TOUCHED", "DISK R/W NOW", "NOTE",
                  box=None, header_style="bold", caption=f"collected in {snap.collect_ms:g} ms")
    for vm in snap.vms:
        cpu = " ".join(_pct(v.cpu_share_pct) for v in vm.sched.vcpus) if vm.sched else "-"
        disk = "-"
        rates = [d for d in vm.disks if d.read_bytes_per_s is not None]
        if rates:
            disk = f"{_bytes(sum(d.read_bytes_per_s or 0 for d in rates))}/s / " \
                   f"{_bytes(sum(d.write_bytes_per_s or 0 for d in rates))}/s"
        if history is not None and vm.memory:
            cpu += " " + history.spark(f"{vm.name}/vcpu0", 100)
        table.add_row(vm.name, vm.state, str(vm.process.pid) if vm.process else "-", cpu,
                      _mib(vm.memory.rss_kib) if vm.memory else "-",
                      _pct(vm.memory.guest_ram_touched_pct) if vm.memory else "-", disk,
                      ("stale: " if vm.stale else "") + (vm.error or ""))
    return table


def hostview(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, help="VM(s) to show; with --all, every running VM."),
    all_vms: bool = typer.Option(False, "--all", help="Every running VM."),
    as_json: bool = typer.Option(False, "--json", help="Print the snapshot as JSON (units in the field names)."),
    watch: bool = typer.Option(False, "--watch", help="Refresh in place until Ctrl-C, with sparklines."),
    interval: float = typer.Option(1.0, "--interval", help="Seconds between readings (rates need two; 0: one reading)."),
    fast: bool = typer.Option(False, "--fast", help="Skip smaps (PSS, guest RAM touched) and page-cache residency."),
    timeout: float = typer.Option(2.0, "--timeout", help="Seconds before a VM that does not answer is marked stale."),
) -> None:
    """How a VM looks from the host: QEMU process and threads, scheduling, memory, storage, CPU mode."""
    if not names and not all_vms:
        raise InvalidInput("name a VM (or several), or use --all")
    if interval < 0 or (watch and interval < 0.2):
        raise InvalidInput("--interval must be at least 0.2 s with --watch, and not negative", field="interval")
    selection = None if all_vms else list(names)
    collector = Collector(ctx.obj.host(), timeout_s=timeout, detailed=not fast, page_cache=not fast)

    def render(snap: Snapshot, history: History | None) -> RenderableType:
        if len(snap.vms) == 1:
            return render_vm(snap.vms[0], snap, history)
        return render_many(snap, history)

    if watch:
        history = History()
        snap = collector.snapshot(selection)
        history.record(snap)
        with Live(render(snap, history), console=out, auto_refresh=False, screen=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    snap = collector.snapshot(selection)
                    history.record(snap)
                    live.update(render(snap, history), refresh=True)
            except KeyboardInterrupt:
                pass
        return
    snap = collector.snapshot(selection)
    if interval > 0:
        time.sleep(interval)
        snap = collector.snapshot(selection)
    if selection is not None and len(snap.vms) == 1 and snap.vms[0].process is None and snap.vms[0].error:
        raise Conflict(snap.vms[0].error)
    if as_json:
        print_json(snap.to_dict())
        return
    out.print(render(snap, None))


def pin(
    ctx: typer.Context,
    name: str,
    vcpu: int = typer.Option(None, "--vcpu", help="The vCPU to pin."),
    emulator: bool = typer.Option(False, "--emulator", help="Pin the emulator threads (all but the vCPUs)."),
    cpus: str = typer.Option(..., "--cpus", help="Host CPUs, e.g. 1 or 0-1 or 0,2."),
    persist: bool = typer.Option(False, "--persist", help="Also keep the pinning in the VM's configuration."),
) -> None:
    """Pin a vCPU (or the emulator threads) of a VM to host CPUs."""
    if (vcpu is None) == (not emulator):
        raise InvalidInput("give exactly one of --vcpu N or --emulator")
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor, tuning

    cases = (command_services(ctx.obj), Actor.cli(f"pin {name}"), ctx.obj.host())
    if emulator:
        applied = tuning.pin_emulator(*cases, name, cpus, persist=persist)
        out.print(f"{name}: emulator threads pinned to host CPUs {applied}" + (" (persistent)" if persist else ""))
    else:
        applied = tuning.pin_vcpu(*cases, name, vcpu, cpus, persist=persist)
        out.print(f"{name}: vCPU {vcpu} pinned to host CPUs {applied}" + (" (persistent)" if persist else ""))


def balloon(
    ctx: typer.Context,
    name: str,
    mib: int = typer.Argument(..., help="The memory the guest may keep, in MiB."),
    persist: bool = typer.Option(False, "--persist", help="Also keep it as the VM's configured current memory."),
) -> None:
    """Set a running VM's balloon (its current memory) in MiB."""
    from vmdeck.cli.stores import command_services
    from vmdeck.usecases import Actor, tuning

    kib = tuning.set_balloon(command_services(ctx.obj), Actor.cli(f"balloon {name}"), ctx.obj.host(), name, mib,
                             persist=persist)
    out.print(f"{name}: balloon target set to {kib // 1024} MiB")


def register(app: typer.Typer) -> None:
    app.command()(hostview)
    app.command()(pin)
    app.command()(balloon)

"""`vmdeck top`: every VM's CPU, memory, disk and network, refreshing in place like virt-top (CLI layer).

The figures come from vmdeck.metrics (the same samples and rates the server records for /metrics and
the history charts): one bulk libvirt call per refresh, whatever the number of VMs. On a terminal,
keys change the order while it runs: c (CPU), m (memory), d (disk), n (network), o (name), q quits.
`--json` takes two samples `--interval` apart (rates need two) and prints them once.
"""

from __future__ import annotations

import contextlib
import select
import sys
import time
from collections.abc import Iterator
from typing import Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from vmdeck.cli.output import out, print_json
from vmdeck.errors import InvalidInput
from vmdeck.metrics.rates import Rates
from vmdeck.metrics.sampler import Latest, Sampler

SORTS = {"cpu": "cpu_pct", "memory": "rss_bytes", "disk": "disk_bps", "net": "net_bps", "name": "name"}
KEYS = {"c": "cpu", "m": "memory", "d": "disk", "n": "net", "o": "name"}


def rows(latest: Latest, sort: str) -> list[dict[str, Any]]:
    """One row per VM, running ones first, in the order `sort` asks (largest first; names A-Z)."""
    found = []
    for vm in latest.sample.vms:
        rates = latest.vm_rates.get(vm.name, Rates())
        disk = None if rates.disk_read_bps is None else (rates.disk_read_bps or 0) + (rates.disk_write_bps or 0)
        net = None if rates.net_rx_bps is None else (rates.net_rx_bps or 0) + (rates.net_tx_bps or 0)
        found.append({"name": vm.name, "project": vm.project, "running": vm.running, "vcpus": vm.vcpus,
                      "memory_bytes": vm.maximum_memory_bytes, **rates.as_dict(), "disk_bps": disk, "net_bps": net,
                      "pinned": vm.name in latest.pinned})
    key = SORTS[sort]
    if key == "name":
        return sorted(found, key=lambda r: (not r["running"], r["name"]))
    return sorted(found, key=lambda r: (not r["running"], -(r[key] or 0.0), r["name"]))


def _size(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _rate(n: float | None) -> str:
    return "–" if n is None else f"{_size(n)}/s"


def render(latest: Latest, sort: str, interactive: bool) -> Table:
    host = latest.sample.host
    title = (f"{host.name}: {sum(1 for vm in latest.sample.vms if vm.running)} of {len(latest.sample.vms)} VMs "
             f"running, {host.vcpus_allocated} vCPUs on {host.pcpus} CPUs, host CPU "
             f"{latest.host_rates.cpu_pct if latest.host_rates.cpu_pct is not None else '–'} %  (sorted by {sort})")
    table = Table(title=title, title_justify="left", expand=False,
                  caption="keys: c CPU  m memory  d disk  n network  o name  q quit" if interactive else None)
    for column, justify in (("VM", "left"), ("vCPU", "right"), ("CPU %", "right"), ("RSS", "right"),
                            ("touched", "right"), ("disk rd", "right"), ("disk wr", "right"), ("net rx", "right"),
                            ("net tx", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows(latest, sort):
        cpu = "–" if row["cpu_pct"] is None else f"{row['cpu_pct']:.1f}"
        name = Text(row["name"], style="bold red" if row["pinned"] else ("" if row["running"] else "dim"))
        table.add_row(name, str(row["vcpus"]), Text(cpu, style="bold red" if row["pinned"] else ""),
                      _size(row["rss_bytes"]), _size(row["touched_bytes"]), _rate(row["disk_read_bps"]),
                      _rate(row["disk_write_bps"]), _rate(row["net_rx_bps"]), _rate(row["net_tx_bps"]))
    return table


@contextlib.contextmanager
def _keys() -> Iterator[bool]:
    """cbreak mode on a terminal (single keys, no echo); yields whether keys can be read."""
    if not sys.stdin.isatty():
        yield False
        return
    import termios
    import tty

    saved = termios.tcgetattr(sys.stdin)
    try:
        tty.setcbreak(sys.stdin.fileno())
        yield True
    finally:
        termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)


def _wait_key(seconds: float) -> str | None:
    ready, _w, _x = select.select([sys.stdin], [], [], seconds)
    return sys.stdin.read(1) if ready else None


def top(
    ctx: typer.Context,
    sort: str = typer.Option("cpu", "--sort", help="cpu, memory, disk, net or name (largest first)."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between refreshes (and between the two "
                                   "samples of --json)."),
    as_json: bool = typer.Option(False, "--json", help="Print every VM's figures once, as JSON."),
    iterations: int = typer.Option(0, "--iterations", "-n", help="Stop after this many refreshes (0: until q or "
                                   "Ctrl-C)."),
) -> None:
    """Every VM's CPU, memory, disk and network, refreshing in place (like virt-top); sortable."""
    if sort not in SORTS:
        raise InvalidInput(f"--sort: one of {', '.join(SORTS)}, not {sort!r}", field="sort")
    if interval < 0.2:
        raise InvalidInput("--interval: at least 0.2 s", field="interval")
    host = ctx.obj.host()
    sampler = Sampler(lambda: host, host.conn.hostname(), interval=interval, detail_interval=60.0)
    latest = sampler.sample_once()
    if as_json:
        time.sleep(interval)
        latest = sampler.sample_once()
        print_json({"at": latest.sample.taken_at, "interval_s": interval, "host": {
            "name": latest.sample.host.name, "pcpus": latest.sample.host.pcpus,
            "vcpus_allocated": latest.sample.host.vcpus_allocated, **latest.host_rates.as_dict()},
            "vms": rows(latest, sort)})
        return
    with _keys() as interactive, Live(render(latest, sort, interactive), console=out, auto_refresh=False,
                                      screen=False) as live:
        count = 0
        try:
            while iterations == 0 or count < iterations:
                deadline = time.monotonic() + interval
                while interactive and (left := deadline - time.monotonic()) > 0:
                    key = _wait_key(left)
                    if key == "q":
                        return
                    if key in KEYS:
                        sort = KEYS[key]
                        live.update(render(latest, sort, interactive), refresh=True)
                if not interactive:
                    time.sleep(interval)
                latest = sampler.sample_once()
                count += 1
                live.update(render(latest, sort, interactive), refresh=True)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    app.command()(top)

"""Shared by the benchmarks: medians with spread, host load, and writing a section of docs/PERFORMANCE.md.

Every benchmark prints its section and, with --write, replaces that section (found by its `## ` title)
in docs/PERFORMANCE.md, so each table sits next to the exact command that produced it.
"""

from __future__ import annotations

import os
import shlex
import statistics
import sys
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "PERFORMANCE.md"


def spread(values: list[float], unit: str = "ms", digits: int = 0) -> str:
    """`median (min-max)` of a list of samples."""
    unit = f" {unit}" if unit else ""
    return (f"{statistics.median(values):.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"
            if values else "-")


def host_load() -> str:
    """The 1-minute load average and CPU count: the reader judges how quiet the host was."""
    one, five, _fifteen = os.getloadavg()
    return f"load average {one:.1f} (5 min: {five:.1f}) on {os.cpu_count()} CPUs"


def command_line() -> str:
    """The command that produced a table, as a reader would re-type it."""
    script = os.path.relpath(sys.argv[0], DOC.parent.parent)
    return " ".join([".venv/bin/python", shlex.quote(script), *map(shlex.quote, sys.argv[1:])])


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def write_section(title: str, body: str) -> None:
    """Replace (or append) the section `## title` of docs/PERFORMANCE.md with `body`."""
    heading = f"## {title}"
    section = f"{heading}\n\n{body.strip()}\n"
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    if heading + "\n" in text:
        head, _, rest = text.partition(heading + "\n")
        following = rest.find("\n## ")
        text = head + section + ("\n" + rest[following + 1:] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


def tolerate_starved_vcpus(host: object, name: str) -> None:
    """Add `no_timer_check` to a benchmark VM's kernel command line.

    On a host loaded far beyond its CPUs, a starved TCG vCPU makes the guest kernel's boot-time timer
    check fail ("IO-APIC + timer doesn't work", a panic); the check is pointless in a VM (cloud images
    skip it the same way). The benchmarks compare vmdeck and virsh on the same definitions, so both
    sides boot with it.
    """
    dom = host.lookup(name)  # type: ignore[attr-defined]
    xml = dom.xml(inactive=True)
    if "no_timer_check" not in xml:
        host.conn.define(xml.replace("</cmdline>", " no_timer_check</cmdline>"))  # type: ignore[attr-defined]

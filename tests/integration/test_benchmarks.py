"""Every benchmark in bench/ runs and prints its table (tiny sizes; no timing is asserted: the numbers
belong in docs/PERFORMANCE.md, produced by a full run on a quiet host)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

CASES = {
    "bench_cli.py": (["--rounds", "1", "--runs", "2", "--vms", "2"], "CLI start-up",
                     "| (3) `vmdeck create -t tiny` + `vmdeck start`, `vmdeck serve` running |"),
    "bench_web.py": (["--vms", "2", "--clients", "2", "--seconds", "1", "--rounds", "1", "--no-console"],
                     "Web API", "| GET /api/vms (list) |"),
    "bench_hostview.py": (["--counts", "1", "--rounds", "1"], "Host view", "| 1 |"),
    "bench_storm.py": (["--vms", "1", "--rounds", "1"], "Boot storm", "| N = 1 |"),
    "bench_density.py": (["--vms", "1", "--clients", "2", "--seconds", "1"], "Density", "| vmdeck | 1 |"),
    "bench_core.py": (["--rounds", "1"], "Core: create, start, ready, list", "| (c) `vmdeck list --json` command |"),
    "bench_remote.py": (["--rounds", "1", "--runs", "2"], "Remote CLI", "| (2) start |"),
    "bench_backup.py": (["--rounds", "1", "--size-mib", "64"], "Backups", "| (b) incremental: bytes in the repository |"),
    "bench_metrics.py": (["--counts", "3", "--scrapes", "2", "--rounds", "1"], "Metrics scrape", "| 3 |"),
    "bench_import.py": (["--disk-gib", "0.05", "--rounds", "1"], "OVA import", "| A / B |"),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs_and_prints_its_table(script: str) -> None:
    args, title, row = CASES[script]
    doc = BENCH.parent / "docs" / "PERFORMANCE.md"
    before = doc.read_text()
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=1800, cwd=BENCH)
    assert done.returncode == 0, done.stderr[-3000:]
    section = done.stdout.partition(f"## {title}\n")[2]
    assert section, done.stdout[-3000:]
    assert "Command: `.venv/bin/python bench/" in section  # the table says which command produced it
    assert row in section, section
    assert doc.read_text() == before  # without --write the documentation is left alone

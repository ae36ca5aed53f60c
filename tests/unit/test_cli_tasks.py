"""`vmdeck task list|show` (the real command on libvirt's test driver): a create from the command line is a
task with its log, a create refused by the quota a failed task with its error; bad input exits 2 or 3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from testdriver import NODE_XML

VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]


def test_cli_creates_are_listed_and_shown_with_their_log(tmp_path: Path) -> None:
    (tmp_path / "pool").mkdir()
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(pool=tmp_path / "pool"))
    env = {**os.environ, "VMDECK_URI": f"test://{node}", "VMDECK_DB": str(tmp_path / "web" / "vmdeck.sqlite"),
           "VMDECK_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*VMDECK, *args], capture_output=True, text=True, env=env, timeout=60)

    assert run("project", "create", "tight", "--vcpus", "1").returncode == 0
    made = run("create", "t1", "--template", "q35-virtio", "--disk", "1")
    assert made.returncode == 0, made.stderr
    refused = run("create", "t2", "--template", "q35-virtio", "--cpus", "2", "--project", "tight")
    assert refused.returncode == 4, refused.stderr

    listed = run("task", "list")
    assert listed.returncode == 0, listed.stderr
    assert "vm.create" in listed.stdout and "created t1" in listed.stdout and "vcpus limit 1" in listed.stdout
    rows = json.loads(run("task", "list", "--all", "--json").stdout)
    assert [(r["target"], r["state"], r["origin"]) for r in rows] == [("t2", "failed", "cli"), ("t1", "done", "cli")]

    shown = run("task", "show", str(rows[1]["id"]))
    assert shown.returncode == 0, shown.stderr
    assert "state: done" in shown.stdout and "volume for vda" in shown.stdout
    assert run("task", "show", "99999").returncode == 3
    assert run("task", "list", "--state", "sleeping").returncode == 2

"""The CLI holds project quotas across every registered host, like the API (the real `vmdeck` command,
two test-driver hosts whose node XML each holds one VM of project acme)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from testdriver import fake_host_uri
from vmdeck.cluster.registry import HostEntry, Registry

VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]
_IN_ACME = ("<metadata><vmdeck:vm xmlns:vmdeck='https://vmdeck.dev/xmlns/vm/1'><vmdeck:project>acme</vmdeck:project>"
            "</vmdeck:vm></metadata>")


def _acme_host(tmp_path: Path, name: str) -> str:
    """A test-driver host whose VM (acme-NAME, 1 vCPU, 256 MiB) belongs to project acme."""
    uri = fake_host_uri(tmp_path, name)
    node = Path(uri.removeprefix("test://"))
    node.write_text(node.read_text().replace(f"<name>busy-{name}</name>", f"<name>acme-{name}</name>{_IN_ACME}"))
    return uri


def test_cli_counts_and_refuses_across_hosts(tmp_path: Path) -> None:
    db = tmp_path / "web" / "vmdeck.sqlite"
    env = {k: v for k, v in os.environ.items() if k != "VMDECK_URI"}
    env.update(VMDECK_DB=str(db), VMDECK_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    registry = Registry(db)
    registry.remove("local")
    for name in "ab":
        registry.add(HostEntry(name, _acme_host(tmp_path, name)))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*VMDECK, *args], capture_output=True, text=True, env=env, timeout=120)

    assert run("project", "create", "acme", "--instances", "2").returncode == 0
    shown = run("project", "show", "acme", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["quota"]["instances"] == {"limit": 2, "used": 2} and report["quota"]["memory_mib"]["used"] == 512
    assert {h: row["vms"] for h, row in report["hosts"].items()} == {"a": ["acme-a"], "b": ["acme-b"]}
    table = run("project", "show", "acme")
    assert "HOST" in table.stdout and "live" in table.stdout, table.stdout
    refused = run("create", "third", "--template", "q35-virtio", "--project", "acme", "--host", "a")
    assert refused.returncode == 4, refused.stderr
    assert "quota exceeded in project acme: instances limit 2, in use 2, this needs 1 more" in refused.stderr

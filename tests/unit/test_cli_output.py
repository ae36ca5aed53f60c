"""What the `vmdeck` command prints for people: full values when piped, an empty list that says what
to do, help without framework placeholders (the real command in a subprocess, libvirt's test driver)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]
LONG_PATH = "/var/lib/libvirt/images/a-rather-deep/folder-for-images-of-this-project/disk-of-the-long-named-vm.qcow2"
NODE = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu>
  <memory>8388608</memory>
  {domains}
</node>"""
DOMAIN = f"""<domain type='test'><name>longpath</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{LONG_PATH}'/>
  <target dev='vda' bus='virtio'/></disk></devices></domain>"""


def run(tmp_path: Path, domains: str, *args: str) -> subprocess.CompletedProcess[str]:
    node = tmp_path / "node.xml"
    node.write_text(NODE.format(domains=domains))
    # stdout is a pipe, as in `vmdeck show NAME | cat`; no COLUMNS: the command decides the width.
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["VMDECK_URI"] = f"test://{node}"
    return subprocess.run([*VMDECK, *args], capture_output=True, text=True, env=env, timeout=60)


def test_show_piped_prints_the_whole_disk_path(tmp_path: Path) -> None:
    result = run(tmp_path, DOMAIN, "show", "longpath")
    assert result.returncode == 0, result.stderr
    disk = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["disk"])
    assert LONG_PATH in disk, result.stdout


def test_an_empty_list_says_so_and_how_to_create_one(tmp_path: Path) -> None:
    result = run(tmp_path, "", "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("no VMs") and "vmdeck create NAME" in result.stdout


def test_help_shows_no_type_placeholders_for_flags(tmp_path: Path) -> None:
    for args in (("--help",), ("delete", "--help"), ("disk", "remove", "--help"), ("list", "--help")):
        result = run(tmp_path, "", *args)
        assert result.returncode == 0, result.stderr
        assert "<bool>" not in result.stdout, (args, result.stdout)
        assert "--help" in result.stdout

"""Every bad input: one line on stderr, a distinct exit code, no traceback (the real `vmdeck` command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testdriver import NODE_XML

VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]


@pytest.fixture
def uri(tmp_path: Path) -> str:
    (tmp_path / "pool").mkdir()
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(pool=tmp_path / "pool"))
    return f"test://{node}"


def run(uri: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VMDECK_URI": uri, "COLUMNS": "200"}
    return subprocess.run([*VMDECK, *map(str, args)], capture_output=True, text=True, env=env, timeout=60)


def assert_error(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("create", "bad name", "-t", "q35-virtio"), 2, "invalid VM name 'bad name'"),
        (("create", "ok", "-t", "nope"), 3, "unknown template 'nope'"),
        (("create", "ok", "-t", "q35-virtio", "--cpus", "0"), 2, "vcpus: Input should be greater than or equal to 1"),
        (("create", "ok", "-t", "q35-virtio", "--cpus", "500"), 2, "500 vCPUs is beyond this host"),
        (("create", "ok", "-t", "q35-virtio", "--memory", "999999"), 2, "more than this host has"),
        (("create", "ok", "-t", "q35-virtio", "--accel", "warp"), 2, "accel"),
        (("create", "ok", "-t", "q35-virtio", "--cdrom", "/nonexistent/x.iso"), 3, "ISO /nonexistent/x.iso does not exist"),
        (("create", "busy", "-t", "q35-virtio"), 4, "a VM named 'busy' already exists"),
        (("start", "busy"), 4, "cannot start VM 'busy': it is running"),
        (("delete", "busy"), 4, "use --force"),
        (("show", "ghost"), 3, "no VM named 'ghost'"),
        (("template", "show", "ghost"), 3, "unknown template 'ghost'"),
    ],
)
def test_bad_input(uri: str, args: tuple[str, ...], code: int, message: str) -> None:
    assert_error(run(uri, *args), code, message)


def test_directory_as_cdrom(uri: str, tmp_path: Path) -> None:
    assert_error(run(uri, "create", "ok", "-t", "q35-virtio", "--cdrom", tmp_path), 2, "is a directory")


def test_libvirtd_not_running_is_exit_5(tmp_path: Path) -> None:
    result = run(f"qemu+unix:///system?socket={tmp_path}/no-such-socket", "list")
    assert_error(result, 5, "cannot connect to libvirt")


def test_usage_error_is_exit_2(uri: str) -> None:
    result = run(uri, "create")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_json_outputs_parse(uri: str) -> None:
    templates = json.loads(run(uri, "template", "list", "--json").stdout)
    assert {t["name"] for t in templates} >= {"tiny", "legacy-pc"}
    shown = json.loads(run(uri, "show", "busy", "--json").stdout)
    assert shown["name"] == "busy" and shown["state"] == "running"


def test_unexpected_exception_is_one_line_and_exit_1(uri: str) -> None:
    # A bug anywhere under a command (here: `list` made to fail the way a bug would) must still
    # end as one line on stderr and exit 1, never a traceback; VMDECK_DEBUG=1 shows the traceback.
    script = ("import sys, vmdeck.vm.inventory as inventory\n"
              "def broken(_host, **_options):\n"
              "    raise KeyError('vcpu.maximum')\n"
              "inventory.list_vms = broken\n"
              "from vmdeck.cli.main import main\n"
              "sys.argv = ['vmdeck', 'list']\n"
              "main()\n")
    env = {**os.environ, "VMDECK_URI": uri}
    env.pop("VMDECK_DEBUG", None)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert_error(result, 1, "internal error (KeyError): 'vcpu.maximum'")
    debug = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                           env={**env, "VMDECK_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr

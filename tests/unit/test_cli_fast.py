"""The CLI's fast path: what `vmdeck list` / `--version` / `start` import, and that they print what typer's do.

The import budget is a set of modules, not a time: typer, rich, pydantic and the web stack must not
be imported by the commands a user or a script runs most (docs/PERFORMANCE.md, "CLI start-up").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testdriver import open_test_host
from vmdeck.cli.fast import answer
from vmdeck.vm.boot import start_many
from vmdeck.vm.inventory import list_vms

# Modules the fast commands must never import (each costs tens of milliseconds of start-up).
HEAVY = ("typer", "click", "rich", "pydantic", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic",
         "jinja2", "yaml", "lxml")

NODE_XML = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>
  <memory>8388608</memory>
  <domain type='test'>
    <name>busy</name><memory unit='MiB'>256</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>
  </domain>
  {stopped}
</node>
"""
# The test driver starts every domain of its node file: `start` meets a running VM (its StateError path).
STOPPED = """<domain type='test'>
    <name>{name}</name><memory unit='MiB'>128</memory><vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os>
  </domain>"""

# Runs vmdeck's real entry point in a fresh interpreter, then reports which heavy modules got imported.
PROBE = """
import json, sys
from vmdeck.cli.main import main
watched = set(json.loads(sys.argv[2]))
sys.argv = ["vmdeck", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exit:
    code = exit.code
else:
    code = 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & watched)
print("HEAVY=" + json.dumps({"code": code, "heavy": heavy, "libvirt": "libvirt" in sys.modules}), file=sys.stderr)
"""


@pytest.fixture
def uri(tmp_path: Path) -> str:
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(stopped="\n".join(STOPPED.format(name=f"idle{i}") for i in range(3))))
    return f"test://{node}"


def probe(uri: str, *args: str) -> tuple[str, dict[str, object], str]:
    env = {**os.environ, "VMDECK_URI": uri, "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)], capture_output=True,
                          text=True, env=env, timeout=60)
    lines = done.stderr.splitlines()
    report = next(line for line in lines if line.startswith("HEAVY="))
    return done.stdout, json.loads(report.removeprefix("HEAVY=")), "".join(f"{ln}\n" for ln in lines if ln != report)


def typer_output(uri: str, *args: str) -> tuple[str, str, int]:
    """The same command line through the full typer command (the fast path bypassed)."""
    env = {**os.environ, "VMDECK_URI": uri, "COLUMNS": "200"}
    code = ("import sys; from vmdeck.errors import VmdeckError; from vmdeck.cli.app import app\n"
            "sys.argv = ['vmdeck', *sys.argv[1:]]\ntry:\n    app()\nexcept VmdeckError as error:\n"
            "    print(f'error: {error}', file=sys.stderr); sys.exit(error.exit_code)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60)
    return done.stdout, done.stderr, done.returncode


@pytest.mark.parametrize("args", [("list",), ("list", "--json"), ("start", "idle0"), ("start", "idle0", "idle1"),
                                  ("--version",)])
def test_fast_commands_import_no_heavy_module(uri: str, args: tuple[str, ...]) -> None:
    _stdout, report, _stderr = probe(uri, *args)
    assert report["code"] in (0, None, 4), report  # 4: the test driver's VMs already run
    # `start` writes its audit line (vmdeck.usecases) in the tenancy database: SQLAlchemy (and Alembic when the
    # database is new, as here) is its price; typer, rich and pydantic stay out.
    allowed = {"sqlalchemy", "alembic"} if args[0] == "start" else set()
    assert set(report["heavy"]) <= allowed, f"`vmdeck {' '.join(args)}` imported {report['heavy']}"
    if args == ("--version",):
        assert report["libvirt"] is False


@pytest.mark.parametrize("args", [("list",), ("list", "--json"), ("start", "idle1"), ("start", "idle0", "idle2"),
                                  ("start", "nothere")])
def test_fast_path_prints_what_typer_prints(uri: str, args: tuple[str, ...]) -> None:
    stdout, report, stderr = probe(uri, *args)
    assert (stdout, stderr, report["code"] or 0) == typer_output(uri, *args)
    assert stdout.strip() or stderr.startswith("error: ")


def test_list_json_is_the_inventory(uri: str) -> None:
    fast, _report, _stderr = probe(uri, "list", "--json")
    from vmdeck.host.connection import connect

    with connect(uri) as host:
        expected = [vm.name for vm in list_vms(host)]
    assert [vm["name"] for vm in json.loads(fast)] == expected == ["busy", "idle0", "idle1", "idle2"]


@pytest.mark.parametrize("argv", [["list", "--help"], ["start"], ["list", "--bogus"], ["start", "a", "--timeout", "x"],
                                  ["show", "busy"], ["create", "--template"], ["-c"], []])
def test_unknown_shapes_go_to_typer(argv: list[str]) -> None:
    # Nothing is run (no connection is opened for these): typer gives its help or usage error.
    assert answer(argv) is False


def test_version_matches_the_package(uri: str) -> None:
    from vmdeck import __version__

    stdout, _report, _stderr = probe(uri, "--version")
    assert stdout == f"vmdeck {__version__}\n" == typer_output(uri, "--version")[0]


def test_start_many_starts_every_vm_and_refuses_a_wrong_state(tmp_path: Path) -> None:
    host = open_test_host(tmp_path)
    for index in range(3):
        host.conn.define(f"<domain type='test'><name>storm{index}</name><memory unit='MiB'>64</memory>"
                            "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>")
    assert start_many(host, ["storm0", "storm1", "storm2"]) == {"storm0": None, "storm1": None, "storm2": None}
    assert {vm.name: vm.state for vm in list_vms(host)}["storm2"] == "running"
    host.lookup("storm0").poweroff()
    from vmdeck.errors import StateError

    with pytest.raises(StateError, match="storm1"):  # storm1 runs: nothing is started, storm0 stays off
        start_many(host, ["storm0", "storm1"])
    assert {vm.name: vm.state for vm in list_vms(host)}["storm0"] == "shut off"

"""Snapshots and linked clones are charged to the project's disk quota before they use anything (issue 19).

A real tiny VM (1 GiB disk, shut off: the offline snapshot path) in a project whose disk limit is moved
step by step: at the limit each operation is refused (exit 4, naming quota, limit and use) and leaves no
file behind; with room it is accepted and the use counted afterwards is exactly what was charged
(an overlay counts its disk's full virtual size). The command here and the API call the same use case
(tests/integration/test_usecase_equivalence.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from itest_support import PREFIX, VMDECK, delete_vm

from vmdeck.host.connection import Host
from vmdeck.paths import pool_dir


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    db = tmp_path_factory.mktemp("quota-charges") / "vmdeck.sqlite"
    return {**os.environ, "VMDECK_DB": str(db), "COLUMNS": "200"}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VMDECK, *args], capture_output=True, text=True, env=env, timeout=600)


def _ok(env: dict[str, str], *args: str) -> str:
    done = _run(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _disk_used(env: dict[str, str], project: str) -> float:
    return float(json.loads(_ok(env, "project", "show", project, "--json"))["quota"]["disk_gib"]["used"])


def _files(vm: str) -> set[str]:
    return {p.name for p in pool_dir().iterdir() if p.name.startswith(vm)}


@pytest.fixture(scope="module")
def vm(env: dict[str, str], host: Host) -> Iterator[str]:
    name = f"{PREFIX}qc-{uuid.uuid4().hex[:6]}"
    _ok(env, "project", "create", "charges", "--disk", "1.5")
    _ok(env, "create", name, "--project", "charges")  # tiny: one 1 GiB disk
    yield name
    for clone in (f"{name}-lc",):
        delete_vm(host, clone)
    delete_vm(host, name)


def _refused(env: dict[str, str], *args: str, limit: str, used: str) -> None:
    done = _run(env, *args)
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert f"quota exceeded in project charges: disk_gib limit {limit} GiB, in use {used} GiB" in done.stderr


def test_snapshots_and_linked_clones_are_charged_first(env: dict[str, str], vm: str, host: Host) -> None:
    assert _disk_used(env, "charges") == 1.0
    before = _files(vm)
    # A snapshot's overlay may grow to the disk's 1 GiB: 0.5 GiB left is not enough.
    _refused(env, "snapshot", "create", vm, "s1", limit="1.5", used="1")
    # A linked clone: the source's snapshot and the clone's own overlay, 1 GiB each.
    _refused(env, "clone", vm, f"{vm}-lc", "--linked", limit="1.5", used="1")
    assert not host.exists(f"{vm}-lc")
    assert _files(vm) == before and _disk_used(env, "charges") == 1.0

    _ok(env, "project", "quota", "charges", "--disk", "2")
    _ok(env, "snapshot", "create", vm, "s1")
    assert _disk_used(env, "charges") == 2.0  # exactly what was charged: one 1 GiB overlay
    _refused(env, "snapshot", "create", vm, "s2", limit="2", used="2")
    _refused(env, "clone", vm, f"{vm}-lc", "--linked", limit="2", used="2")
    assert _disk_used(env, "charges") == 2.0

    _ok(env, "project", "quota", "charges", "--disk", "4")
    _ok(env, "clone", vm, f"{vm}-lc", "--linked")
    shown = json.loads(_ok(env, "project", "show", "charges", "--json"))
    assert shown["quota"]["disk_gib"]["used"] == 4.0 and shown["quota"]["instances"]["used"] == 2
    assert sorted(shown["vms"]) == sorted([vm, f"{vm}-lc"])
    # Full again: nothing more fits, not even a snapshot of the clone.
    _refused(env, "snapshot", "create", f"{vm}-lc", "s1", limit="4", used="4")

"""Every mutating operation through the command and through the REST API: the same quota effect and the
same audit line (issue 18: one use case behind every face).

Two twin VMs in one project, on one database: each operation is done to one twin by the real `vmdeck`
command (in-process, its fast path for create and start) and to the other by the API (in-process ASGI app
on qemu:///system). After each, the change in the project's counted use and the newest audit line
(action, project, VM, status, result; the VM's name replaced by `VM`) must be the same. Refusals too: a
resize past the vCPU quota, a disk past the disk quota and a migration to an unknown host are refused by
both, with the same line.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from itest_support import PREFIX, VMDECK, delete_vm

from vmdeck.api import Settings, create_app
from vmdeck.host.connection import Host
from vmdeck.host.events import ensure_event_loop
from vmdeck.paths import iso_dir
from vmdeck.storage.iso import make_iso
from vmdeck.store.auditlog import Audit
from vmdeck.store.db import open_database
from vmdeck.store.quota import usage_report

PASSWORD = "equivalence-test-password"
PROJECT = "twins"
QUOTAS = ("instances", "vcpus", "memory_mib", "disk_gib")


@dataclass(frozen=True)
class Op:
    label: str
    cli: tuple[str, ...]  # `vmdeck` arguments; {vm} is the twin
    method: str
    path: str  # API path; {vm} is the twin
    body: dict[str, Any] | None = None
    ok: bool = True  # False: both doors must refuse it


OPS = [
    Op("create", ("create", "{vm}", "--project", PROJECT), "POST", "/api/vms",
       {"name": "{vm}", "template": "tiny", "project": PROJECT}),
    Op("resize", ("set", "{vm}", "--cpus", "2"), "PATCH", "/api/vms/{vm}", {"vcpus": 2}),
    Op("resize past the quota", ("set", "{vm}", "--cpus", "9"), "PATCH", "/api/vms/{vm}", {"vcpus": 9}, ok=False),
    Op("snapshot", ("snapshot", "create", "{vm}", "s1"), "POST", "/api/vms/{vm}/snapshots", {"name": "s1"}),
    Op("second snapshot", ("snapshot", "create", "{vm}", "s2"), "POST", "/api/vms/{vm}/snapshots", {"name": "s2"}),
    Op("revert", ("snapshot", "revert", "{vm}", "s1"), "POST", "/api/vms/{vm}/snapshots/s1/revert"),
    Op("snapshot delete", ("snapshot", "delete", "{vm}", "s2"), "DELETE", "/api/vms/{vm}/snapshots/s2"),
    Op("linked clone", ("clone", "{vm}", "{vm}-lc", "--linked"), "POST", "/api/vms/{vm}/clone",
       {"name": "{vm}-lc", "linked": True}),
    Op("delete the clone", ("delete", "{vm}-lc"), "DELETE", "/api/vms/{vm}-lc"),
    Op("disk add", ("disk", "add", "{vm}", "--size", "1"), "POST", "/api/vms/{vm}/disks", {"size_gib": 1}),
    Op("disk add past the quota", ("disk", "add", "{vm}", "--size", "40"), "POST", "/api/vms/{vm}/disks",
       {"size_gib": 40}, ok=False),
    Op("disk resize", ("disk", "resize", "{vm}", "vdb", "2"), "POST", "/api/vms/{vm}/disks/vdb/resize",
       {"size_gib": 2}),
    Op("disk remove", ("disk", "remove", "{vm}", "vdb", "--delete-volume"), "DELETE",
       "/api/vms/{vm}/disks/vdb?delete_volume=true"),
    Op("nic add", ("nic", "add", "{vm}", "--mac", "52:54:00:e9:00:{n}"), "POST", "/api/vms/{vm}/nics",
       {"mac": "52:54:00:e9:00:{n}"}),
    Op("nic remove", ("nic", "remove", "{vm}", "52:54:00:e9:00:{n}"), "DELETE", "/api/vms/{vm}/nics/52:54:00:e9:00:{n}"),
    Op("cdrom add", ("cdrom", "add", "{vm}"), "POST", "/api/vms/{vm}/cdroms", {}),
    Op("cdrom insert", ("cdrom", "insert", "{vm}", "{iso_path}"), "POST", "/api/vms/{vm}/media", {"iso": "{iso}"}),
    Op("cdrom eject", ("cdrom", "eject", "{vm}"), "DELETE", "/api/vms/{vm}/media"),
    Op("migrate to an unknown host", ("migrate", "{vm}", "--to", "nowhere"), "POST", "/api/vms/{vm}/migrate",
       {"to": "nowhere"}, ok=False),
    Op("start", ("start", "{vm}"), "POST", "/api/vms/{vm}/start"),
    Op("pause", ("pause", "{vm}"), "POST", "/api/vms/{vm}/pause"),
    Op("resume", ("resume", "{vm}"), "POST", "/api/vms/{vm}/resume"),
    Op("reset", ("reset", "{vm}"), "POST", "/api/vms/{vm}/reset"),
    Op("resume twice", ("resume", "{vm}"), "POST", "/api/vms/{vm}/resume", ok=False),  # not paused: 409
    Op("start a VM that is not there", ("start", "{vm}-none"), "POST", "/api/vms/{vm}-none/start", ok=False),
    Op("poweroff", ("poweroff", "{vm}"), "POST", "/api/vms/{vm}/poweroff"),
    Op("delete", ("delete", "{vm}"), "DELETE", "/api/vms/{vm}"),
]


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("equivalence") / "vmdeck.sqlite"


@pytest.fixture(scope="module")
def api(db_path: Path) -> Iterator[TestClient]:
    ensure_event_loop()
    settings = Settings(uri="qemu:///system", db_path=db_path, admin_password=PASSWORD, inventory_interval=3600,
                        allowed_hosts=("localhost", "127.0.0.1", "::1", "testserver"))
    with TestClient(create_app(settings)) as client:
        reply = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        quota = {"vcpus": 8, "disk_gib": 30}
        assert client.post("/api/projects", json={"name": PROJECT, "quota": quota}).status_code == 201
        yield client


@pytest.fixture(scope="module")
def twins(host: Host) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:6]
    pair = (f"{PREFIX}eq-api-{tag}", f"{PREFIX}eq-cli-{tag}")
    yield pair
    for name in pair:
        delete_vm(host, f"{name}-lc")
        delete_vm(host, name)


def _fill(value: Any, vm: str, iso: Path, n: str) -> Any:
    if isinstance(value, str):
        return value.replace("{vm}", vm).replace("{iso_path}", str(iso)).replace("{iso}", iso.name).replace("{n}", n)
    if isinstance(value, dict):
        return {k: _fill(v, vm, iso, n) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_fill(v, vm, iso, n) for v in value)
    return value


@pytest.fixture(scope="module")
def iso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An ISO in the library: the API names it, the command gives its path."""
    folder = tmp_path_factory.mktemp("iso-content")
    (folder / "hello.txt").write_text("hello\n")
    path = make_iso(folder, iso_dir() / f"{PREFIX}eq.iso")
    path.chmod(0o644)
    yield path
    path.unlink(missing_ok=True)


def _used(db: Any, host: Host) -> dict[str, float]:
    quota = usage_report(db, host, PROJECT)["quota"]
    return {q: quota[q]["used"] for q in QUOTAS}


def _line(audit: Audit, vm: str) -> tuple[Any, ...]:
    entry = audit.entries(None, limit=1)[0]
    return (entry["action"], entry["project"], (entry["vm"] or "").replace(vm, "VM"), entry["status"],
            entry["result"].replace(vm, "VM"))


def _effect(db: Any, host: Host, act: Callable[[], bool]) -> tuple[bool, dict[str, float]]:
    before = _used(db, host)
    succeeded = act()
    after = _used(db, host)
    return succeeded, {q: round(after[q] - before[q], 3) for q in QUOTAS}


def test_the_command_and_the_api_have_the_same_effect(api: TestClient, twins: tuple[str, str], db_path: Path,
                                                      host: Host, iso: Path) -> None:
    db = open_database(db_path)
    audit = Audit(db)
    env = {**os.environ, "VMDECK_DB": str(db_path), "COLUMNS": "200"}
    by_api, by_cli = twins
    for op in OPS:
        def through_api() -> bool:
            reply = api.request(op.method, _fill(op.path, by_api, iso, "01"),
                                json=_fill(op.body, by_api, iso, "01"))
            assert reply.status_code < 300 if op.ok else reply.status_code >= 400, (op.label, reply.text)
            return reply.status_code < 300

        def through_cli() -> bool:
            done = subprocess.run([*VMDECK, *_fill(op.cli, by_cli, iso, "02")], capture_output=True, text=True, env=env,
                                  timeout=600)
            assert (done.returncode == 0) is op.ok, (op.label, done.stderr)
            return done.returncode == 0

        api_effect = _effect(db, host, through_api)
        api_line = _line(audit, by_api)
        cli_effect = _effect(db, host, through_cli)
        cli_line = _line(audit, by_cli)
        assert cli_effect == api_effect, op.label
        assert cli_line == api_line, op.label
        # A refusal before the VM was found is logged without a project (nothing to tell the caller's managers).
        assert api_line[1] == (None if api_line[4].startswith("refused") else PROJECT), (op.label, api_line)

"""Every mutating operation through the command and through the REST API: the same quota effect and the
same audit line (issue 18: one use case behind every face).

Two twin VMs in one project, on one database: each operation is done to one twin by the real `vmdeck`
command (in-process, its fast path for create and start) and to the other by the API (in-process ASGI app
on qemu:///system). After each, the change in the project's counted use and the newest audit line
(action, project, VM, status, result; the VM's name replaced by `VM`) must be the same. Refusals too: a
resize past the vCPU quota, a disk past the disk quota and a migration to an unknown host are refused by
both, with the same line.

The operations the interfaces used to call the core for directly are walked too: exec, keys and text;
backups (take, prune, schedule, cancel, restore as a new VM, charged like a create); an import; a project's
network; a revert and a Learn step past the disk quota (each charged before it makes anything: the Learn
step's scratch disk is refused with the very line `vmdeck disk add` gets). And root's command on a VM whose
project the command's database has no row for: charged nothing, done, and still audited.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from itest_support import PREFIX, VMDECK, delete_vm, wait_for

from vmdeck.api import Settings, create_app
from vmdeck.host.connection import Host
from vmdeck.host.events import ensure_event_loop
from vmdeck.paths import iso_dir
from vmdeck.storage.backup_repo import Repository
from vmdeck.storage.iso import make_iso
from vmdeck.store.auditlog import Audit
from vmdeck.store.db import open_database
from vmdeck.store.quota import usage_report
from vmdeck.vm.agent import agent_ping

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
    tight: bool = False  # the project's disk quota set to its use first (and put back after)
    ready: bool = False  # wait for both guests' agents first
    upload: bool = False  # the API's body is the disk image {image}
    api_action: str | None = None  # compare the API's newest line of this action (a step's inner change)


OPS = [
    Op("create", ("create", "{vm}", "--project", PROJECT), "POST", "/api/vms",
       {"name": "{vm}", "template": "tiny", "project": PROJECT}),
    Op("resize", ("set", "{vm}", "--cpus", "2"), "PATCH", "/api/vms/{vm}", {"vcpus": 2}),
    Op("resize past the quota", ("set", "{vm}", "--cpus", "9"), "PATCH", "/api/vms/{vm}", {"vcpus": 9}, ok=False),
    Op("snapshot", ("snapshot", "create", "{vm}", "s1"), "POST", "/api/vms/{vm}/snapshots", {"name": "s1"}),
    Op("second snapshot", ("snapshot", "create", "{vm}", "s2"), "POST", "/api/vms/{vm}/snapshots", {"name": "s2"}),
    Op("revert", ("snapshot", "revert", "{vm}", "s1"), "POST", "/api/vms/{vm}/snapshots/s1/revert"),
    Op("revert past the disk quota", ("snapshot", "revert", "{vm}", "s1"), "POST", "/api/vms/{vm}/snapshots/s1/revert",
       ok=False, tight=True),
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
    Op("import", ("import", "{image}", "--name", "{vm}-imp", "--project", PROJECT), "POST",
       f"/api/import?filename=eq.img&name={{vm}}-imp&project={PROJECT}", upload=True),
    Op("delete the import", ("delete", "{vm}-imp"), "DELETE", "/api/vms/{vm}-imp"),
    Op("network create", ("network", "create", "{vm}-n", "--mode", "isolated", "--subnet", "10.{k}.0/24", "--project",
                          PROJECT), "POST", "/api/networks",
       {"name": "{vm}-n", "mode": "isolated", "subnet": "10.{k}.0/24", "project": PROJECT}),
    Op("network reserve for a VM not on it", ("network", "reserve", "{vm}-n", "{vm}"), "POST",
       "/api/networks/{vm}-n/reservations", {"vm": "{vm}"}, ok=False),
    Op("network delete", ("network", "delete", "{vm}-n"), "DELETE", "/api/networks/{vm}-n"),
    Op("start", ("start", "{vm}"), "POST", "/api/vms/{vm}/start"),
    Op("exec", ("exec", "{vm}", "--", "/bin/true"), "POST", "/api/vms/{vm}/exec", {"command": ["/bin/true"]},
       ready=True),
    Op("send keys", ("send-keys", "{vm}", "shift"), "POST", "/api/vms/{vm}/keys", {"keys": ["shift"]}),
    Op("type", ("type", "{vm}", "a"), "POST", "/api/vms/{vm}/type", {"text": "a"}),
    Op("Learn step past the disk quota", ("disk", "add", "{vm}", "--size", "0.0625"), "POST",
       "/api/vms/{vm}/learn/hotplug", ok=False, tight=True, api_action="vm.devices"),
    Op("backup", ("backup", "create", "{vm}"), "POST", "/api/vms/{vm}/backups", {}),
    Op("backup prune", ("backup", "prune", "{vm}", "--keep-last", "1"), "POST", "/api/vms/{vm}/backups/prune",
       {"keep_last": 1}),
    Op("backup schedule", ("backup", "schedule", "{vm}", "--every", "6h", "--keep", "2"), "PUT",
       "/api/vms/{vm}/backups/schedule", {"every": "6h", "keep_last": 2}),
    Op("backup unschedule", ("backup", "schedule", "{vm}", "--remove"), "DELETE", "/api/vms/{vm}/backups/schedule"),
    Op("backup cancel with none running", ("backup", "cancel", "{vm}"), "POST", "/api/vms/{vm}/backups/cancel",
       ok=False),
    Op("restore as a new VM", ("backup", "restore", "{backup}", "--as", "{vm}-r"), "POST",
       "/api/backups/{backup}/restore", {"as_name": "{vm}-r"}),
    Op("delete the restored VM", ("delete", "{vm}-r"), "DELETE", "/api/vms/{vm}-r"),
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
def backup_repo() -> Iterator[Path]:
    """One repository for both doors (the server uses its default: $VMDECK_BACKUP_REPO), in a folder QEMU's
    user can pass through."""
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}eq-bk-", dir="/var/tmp"))
    folder.chmod(0o711)
    saved = os.environ.get("VMDECK_BACKUP_REPO")
    os.environ["VMDECK_BACKUP_REPO"] = str(folder / "repo")
    yield folder / "repo"
    if saved is None:
        os.environ.pop("VMDECK_BACKUP_REPO", None)
    else:
        os.environ["VMDECK_BACKUP_REPO"] = saved
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small raw disk image to import."""
    path = tmp_path_factory.mktemp("import") / "eq.img"
    path.write_bytes(b"vmdeck" + bytes(4 << 20))
    return path


@pytest.fixture(scope="module")
def api(db_path: Path, backup_repo: Path) -> Iterator[TestClient]:
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
        for made in (f"{name}-lc", f"{name}-imp", f"{name}-r", name):
            delete_vm(host, made)
        if host.conn.has_network(f"{name}-n"):
            from vmdeck.vm.networks import delete_network

            delete_network(host, f"{name}-n")


def _fill(value: Any, words: dict[str, str]) -> Any:
    if isinstance(value, str):
        for word, meaning in words.items():
            value = value.replace("{" + word + "}", meaning)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, words) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_fill(v, words) for v in value)
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


def _newest(audit: Audit) -> int:
    found = audit.entries(None, limit=1)
    return int(found[0]["id"]) if found else 0


def _line(audit: Audit, vm: str, action: str | None = None, after: int = 0) -> tuple[Any, ...]:
    entry = audit.entries(None, limit=1, action=action)[0]
    assert entry["id"] > after, f"no {action or 'audit'} line was written for {vm}"
    return (entry["action"], entry["project"], (entry["vm"] or "").replace(vm, "VM"), entry["status"],
            entry["result"].replace(vm, "VM"))


def _effect(db: Any, host: Host, act: Callable[[], bool]) -> tuple[bool, dict[str, float]]:
    before = _used(db, host)
    succeeded = act()
    after = _used(db, host)
    return succeeded, {q: round(after[q] - before[q], 3) for q in QUOTAS}


def _words(vm: str, iso: Path, image: Path, repo: Path, n: int, subnet: int) -> dict[str, str]:
    """What the placeholders of an operation mean for one twin."""
    backups = Repository(repo).manifests(vm) if repo.exists() else []
    return {"vm": vm, "iso_path": str(iso), "iso": iso.name, "image": str(image), "n": f"{n:02d}",
            "k": f"{subnet}.{n}", "backup": backups[-1].id if backups else "none"}


def test_the_command_and_the_api_have_the_same_effect(api: TestClient, twins: tuple[str, str], db_path: Path,
                                                      host: Host, iso: Path, image: Path, backup_repo: Path) -> None:
    db = open_database(db_path)
    audit = Audit(db)
    env = {**os.environ, "VMDECK_DB": str(db_path), "COLUMNS": "200"}
    by_api, by_cli = twins
    subnet = random.randint(100, 250)  # 10.N.1.0/24 and 10.N.2.0/24: two runs at once rarely overlap
    for op in OPS:
        api_words = _words(by_api, iso, image, backup_repo, 1, subnet)
        cli_words = _words(by_cli, iso, image, backup_repo, 2, subnet)
        if op.ready:
            for name in twins:
                wait_for(lambda name=name: agent_ping(host.lookup(name)), timeout=300)
        if op.tight:  # no room left on the disk quota: anything that makes a volume is refused
            used = _used(db, host)["disk_gib"]
            assert api.patch(f"/api/projects/{PROJECT}", json={"disk_gib": used}).status_code == 200

        def through_api() -> bool:
            content = image.read_bytes() if op.upload else None
            reply = api.request(op.method, _fill(op.path, api_words), content=content,
                                json=None if op.upload else _fill(op.body, api_words))
            assert reply.status_code < 300 if op.ok else reply.status_code >= 400, (op.label, reply.text)
            return reply.status_code < 300

        def through_cli() -> bool:
            done = subprocess.run([*VMDECK, *_fill(op.cli, cli_words)], capture_output=True, text=True, env=env,
                                  timeout=600)
            assert (done.returncode == 0) is op.ok, (op.label, done.stderr)
            return done.returncode == 0

        started = time.monotonic()
        try:
            before = _newest(audit)
            api_effect = _effect(db, host, through_api)
            api_line = _line(audit, by_api, op.api_action, before)
            before = _newest(audit)
            cli_effect = _effect(db, host, through_cli)
            cli_line = _line(audit, by_cli, after=before)
        finally:
            if op.tight:
                assert api.patch(f"/api/projects/{PROJECT}", json={"disk_gib": 30}).status_code == 200
        print(f"{op.label}: {time.monotonic() - started:.1f} s")  # what each costs, with -s
        assert cli_effect == api_effect, op.label
        assert cli_line == api_line, op.label
        # A refusal before the VM was found is logged without a project (nothing to tell the caller's managers).
        assert api_line[1] == (None if api_line[4].startswith("refused") else PROJECT), (op.label, api_line)
        if op.tight:
            assert api_line[3] == 409 and api_line[4].startswith("quota_exceeded: "), (op.label, api_line)


def test_a_project_this_database_does_not_know_holds_root_to_no_quota(host: Host, tmp_path: Path) -> None:
    """Root's command on a VM whose project has no row in the command's database (made by another control
    plane): nothing to charge, so the change is done, and it is audited in that database all the same."""
    name = f"{PREFIX}eq-norow-{uuid.uuid4().hex[:6]}"
    elsewhere = {**os.environ, "VMDECK_DB": str(tmp_path / "elsewhere.sqlite"), "COLUMNS": "200"}
    here = {**os.environ, "VMDECK_DB": str(tmp_path / "here.sqlite"), "COLUMNS": "200"}

    def vmdeck(env: dict[str, str], *args: str) -> None:
        done = subprocess.run([*VMDECK, *args], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, (args, done.stderr)

    try:
        vmdeck(elsewhere, "create", name, "--project", "faraway")
        for args in (("disk", "add", name, "--size", "0.0625"), ("set", name, "--cpus", "2"),
                     ("snapshot", "create", name, "s1")):
            vmdeck(here, *args)
            assert _line(Audit(open_database(tmp_path / "here.sqlite")), name)[1:] == ("faraway", "VM", *(
                (201, "ok") if args[0] in ("disk", "snapshot") else (200, "ok"))), args
        assert len([d for d in host.lookup(name).xml(inactive=True).split("<disk ") if "device='disk'" in d]) == 2
    finally:
        delete_vm(host, name)

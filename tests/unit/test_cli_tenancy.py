"""The host administrator's CLI on the web database: projects, quotas, users, roles, password recovery,
adopting a VM, creating in a project, the audit log (the real `vmdeck` command, libvirt's test driver)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from testdriver import NODE_XML

VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "pool").mkdir()
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(pool=tmp_path / "pool"))
    return {**os.environ, "VMDECK_URI": f"test://{node}", "VMDECK_DB": str(tmp_path / "web" / "vmdeck.sqlite"),
            "VMDECK_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VMDECK, *args], capture_output=True, text=True, env=env, timeout=60, input=stdin)


def ok(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = run(env, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_projects_users_and_audit(env: dict[str, str]) -> None:
    ok(env, "project", "create", "acme", "--instances", "2", "--vcpus", "4", "--memory", "1024")
    assert run(env, "project", "create", "acme").returncode == 4  # taken
    assert run(env, "project", "create", "Bad_Name").returncode == 2
    ok(env, "user", "add", "alice", "--project", "acme", "--role", "operator", "--password-stdin",
       stdin="alice-password\n")
    generated = ok(env, "user", "add", "bob", "--project", "acme", "--role", "viewer")
    assert "password: " in generated
    assert run(env, "user", "add", "carol", "--project", "acme", "--role", "boss").returncode == 2
    users = {u["username"]: u for u in json.loads(ok(env, "user", "list", "--json"))}
    assert users["alice"]["projects"] == {"acme": "operator"} and users["bob"]["projects"] == {"acme": "viewer"}
    ok(env, "user", "role", "bob", "--project", "acme", "--role", "manager")
    ok(env, "user", "disable", "bob")
    users = {u["username"]: u for u in json.loads(ok(env, "user", "list", "--json"))}
    assert users["bob"] == {"username": "bob", "is_admin": False, "disabled": True, "projects": {"acme": "manager"}}
    # Root's recovery: a new password from stdin replaces the old one.
    ok(env, "user", "passwd", "alice", "--password-stdin", stdin="new-alice-password\n")
    db = sqlite3.connect(env["VMDECK_DB"])
    (stored,) = db.execute("select password_hash from users where username='alice'").fetchone()
    from argon2 import PasswordHasher

    assert PasswordHasher().verify(stored, "new-alice-password")
    ok(env, "project", "quota", "acme", "--vcpus", "8", "--unlimited", "instances")
    listed = json.loads(ok(env, "project", "list", "--json"))
    assert listed[0]["quota"] == {"instances": None, "vcpus": 8, "memory_mib": 1024, "disk_gib": None, "iso_gib": None,
                                  "networks": None, "forwards": None}
    shown = json.loads(ok(env, "project", "show", "acme", "--json"))
    assert shown["quota"]["vcpus"] == {"limit": 8, "used": 0} and shown["vms"] == []
    ok(env, "user", "remove", "bob")
    assert "bob" not in ok(env, "user", "list")
    audit = json.loads(ok(env, "audit", "--json"))
    assert [e["action"] for e in audit][:2] == ["user.manage", "project.manage"]
    assert all(e["via"] == "cli" for e in audit) and any("user passwd alice" in e["target"] for e in audit)
    ok(env, "project", "delete", "acme")
    assert run(env, "project", "show", "acme").returncode == 3
    assert "deleted 0 audit entries" in ok(env, "audit", "--prune-older-than", "30")


def test_adopt_and_create_in_a_project(env: dict[str, str]) -> None:
    # The test driver forgets its VMs when the process ends: each command shows its effect in its own output.
    adopted = ok(env, "vm", "adopt", "busy", "--project", "ops")
    assert "busy: now in project ops" in adopted
    created = json.loads(ok(env, "create", "web1", "--template", "q35-virtio", "--disk", "1", "--json"))
    assert created["project"] == "default"  # created on first use
    assert "default" in ok(env, "project", "list")
    ok(env, "project", "create", "tiny", "--vcpus", "1")
    refused = run(env, "create", "big", "--template", "q35-virtio", "--cpus", "2", "--project", "tiny")
    assert refused.returncode == 4 and "vcpus limit 1, in use 0" in refused.stderr


def test_db_files_are_private(env: dict[str, str]) -> None:
    ok(env, "project", "list")
    path = Path(env["VMDECK_DB"])
    assert path.parent.stat().st_mode & 0o777 == 0o700
    for file in path.parent.iterdir():
        assert file.stat().st_mode & 0o777 == 0o600, file


def _loaded_after(*args: str) -> str:
    code = ("import sys\nfrom vmdeck.cli.main import app\n"
            f"try:\n    app({list(args)!r})\nexcept SystemExit:\n    pass\n"
            "print('fastapi' in sys.modules, 'sqlalchemy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return result.stdout.strip().splitlines()[-1]


def test_admin_commands_do_not_load_the_web_server(tmp_path: Path) -> None:
    assert _loaded_after("project", "list", "--db", str(tmp_path / "db.sqlite")) == "False True"  # never FastAPI
    assert _loaded_after("list", "--help") == "False False"  # commands without the database load neither

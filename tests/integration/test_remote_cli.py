"""`vmdeck --remote`: a customer's command line against a real `vmdeck serve --tls-self-signed` with the
customer's own token, compared command by command with the same commands run in-process as root (same
output, same --json, same exit codes); the certificate pinned at first contact; a viewer's token that
cannot start a VM; a revoked token; another project's VM answering exactly like an unknown one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from itest_support import PREFIX, VMDECK, delete_vm, wait_for

from serving import free_port, wait_for_serve
from vmdeck.api.hostpaths import hide_host_paths
from vmdeck.host.connection import Host

PASSWORD = "remote-admin-password"
CUSTOMER_PASSWORD = "remote-customer-password"


class Served:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.url = f"https://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.folder / "serve.log"
        env = {**os.environ, "VMDECK_ADMIN_PASSWORD": PASSWORD, "VMDECK_LOCAL_SOCKET": "off"}
        with open(log, "ab") as out:
            self.process = subprocess.Popen([*VMDECK, "serve", "--port", str(self.port), "--tls-self-signed",
                                             "--db", str(self.folder / "db" / "web.sqlite")],
                                            stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_for_serve(self.url, self.process, log, verify=False)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def admin(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=120, verify=False)
        reply = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        reply.raise_for_status()
        client.headers["Cookie"] = f"vmdeck_session={reply.cookies['vmdeck_session']}"
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        return client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("remote-serve"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def customer(served: Served, host: Host) -> Iterator[dict[str, str]]:
    """A project with a manager, and one running tiny VM of theirs (made through the remote)."""
    tag = uuid.uuid4().hex[:6]
    names = {"project": f"rc{tag}", "user": f"rc{tag}", "vm": f"{PREFIX}remote-{tag}"}
    admin = served.admin()
    admin.post("/api/projects", json={"name": names["project"]}).raise_for_status()
    admin.post("/api/auth/users", json={"username": names["user"], "password": CUSTOMER_PASSWORD,
                                        "project": names["project"], "role": "manager"}).raise_for_status()
    yield names
    with contextlib.suppress(Exception):
        delete_vm(host, names["vm"])


def _words(text: str) -> list[str]:
    """Each line's words: a table's columns are as wide as their longest cell, which the cut paths change."""
    return [" ".join(line.split()) for line in text.splitlines()]


def _without_folders(text: str) -> str:
    """Host paths cut to their last component, as the server does for a tenant's answers."""
    return hide_host_paths(text, frozenset())


def vmdeck(*args: str, stdin: str | None = None, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "VMDECK_LOCAL_SOCKET": "off"}
    if config is not None:
        env["VMDECK_CONFIG_DIR"] = str(config)
    return subprocess.run([*VMDECK, *args], input=stdin, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def added(served: Served, customer: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The customer's config folder with the server added as `srv` (a token made from their password)."""
    config = tmp_path_factory.mktemp("customer-config")
    made = vmdeck("remote", "add", "srv", served.url, "--user", customer["user"], "--password-stdin",
                  stdin=CUSTOMER_PASSWORD + "\n", config=config)
    assert made.returncode == 0, made.stderr
    assert "SHA256:" in made.stderr and "pinned" in made.stderr
    stored = config / "remotes.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert CUSTOMER_PASSWORD not in stored.read_text()
    return config


def test_the_same_commands_give_the_same_answers(host: Host, added: Path, customer: dict[str, str]) -> None:
    vm = customer["vm"]
    made = vmdeck("--remote", "srv", "create", vm, "-t", "tiny", "--memory", "128", "--start", config=added)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"created {vm} from template tiny: 1 vCPU, 128 MiB")
    wait_for(lambda: vmdeck("exec", vm, "--", "/bin/true").returncode == 0, timeout=300)
    # The server is the customer's VM's only way in: the `srv:` prefix and `--remote` are the same.
    for local_args, remote_args in (
        (["show", vm, "--json"], ["--remote", "srv", "show", vm, "--json"]),
        (["show", vm], ["show", f"srv:{vm}"]),
        (["exec", vm, "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
         ["--remote", "srv", "exec", vm, "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"]),
        (["pause", vm], ["--remote", "srv", "resume", vm]),
        (["show", "nosuchvm-remote"], ["--remote", "srv", "show", "nosuchvm-remote"]),
    ):
        here = vmdeck(*local_args)
        there = vmdeck(*remote_args, config=added)
        # A customer's answers name files, never the host's folders (vmdeck.api.hostpaths): root's do.
        here.stdout, here.stderr = _without_folders(here.stdout), _without_folders(here.stderr)
        if local_args[0] == "pause":  # pause here, resume there: each says what it did
            assert (here.returncode, there.returncode) == (0, 0), (here.stderr, there.stderr)
            assert (here.stdout, there.stdout) == (f"{vm} paused\n", f"{vm} resumed\n")
            continue
        assert there.returncode == here.returncode, (local_args, here.stderr, there.stderr)
        assert _words(there.stdout) == _words(here.stdout), local_args
        assert there.stderr == here.stderr, local_args
    listed = json.loads(vmdeck("--remote", "srv", "list", "--json", config=added).stdout)
    assert [v["name"] for v in listed] == [vm]
    mine = next(v for v in json.loads(vmdeck("list", "--json").stdout) if v["name"] == vm)
    assert {k: listed[0][k] for k in ("state", "vcpus", "memory_mib", "project")} == \
        {k: mine[k] for k in ("state", "vcpus", "memory_mib", "project")}


def test_another_projects_vm_is_not_found(shared_vm: str, added: Path) -> None:
    foreign = vmdeck("--remote", "srv", "show", shared_vm, config=added)
    unknown = vmdeck("--remote", "srv", "show", "nosuchvm-remote", config=added)
    assert foreign.returncode == unknown.returncode == 3
    assert foreign.stderr.replace(shared_vm, "X") == unknown.stderr.replace("nosuchvm-remote", "X")


def test_a_viewer_token_cannot_start_and_a_revoked_one_fails(added: Path, customer: dict[str, str],
                                                             served: Served, tmp_path: Path) -> None:
    made = vmdeck("--remote", "srv", "token", "create", "--role", "viewer", "--json", config=added)
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    viewer = tmp_path / "viewer-config"
    assert vmdeck("remote", "add", "srv", served.url, "--token-stdin", stdin=token["token"] + "\n",
                  config=viewer).returncode == 0
    assert vmdeck("remote", "switch", "srv", config=viewer).returncode == 0
    refused = vmdeck("start", customer["vm"], config=viewer)  # the current remote, no --remote needed
    assert refused.returncode == 8
    assert refused.stderr.startswith("error: ") and "operator" in refused.stderr
    assert vmdeck("list", config=viewer).returncode == 0
    # A token manages itself only (not its owner's other tokens): the viewer's token revokes itself.
    assert vmdeck("--remote", "srv", "token", "revoke", str(token["id"]), config=added).returncode == 3
    revoked = vmdeck("token", "revoke", str(token["id"]), config=viewer)
    assert revoked.returncode == 0, revoked.stderr
    after = vmdeck("list", config=viewer)
    assert after.returncode == 8 and after.stderr.count("\n") == 1
    # A command only this machine has is refused with the remote chosen, never run on the wrong side.
    local_only = vmdeck("image", "list", config=viewer)
    assert local_only.returncode == 2 and "--remote local" in local_only.stderr


def test_a_changed_certificate_is_refused(served: Served, added: Path, tmp_path: Path) -> None:
    wrong = vmdeck("remote", "add", "other", served.url, "--token-stdin", "--accept-fingerprint",
                   "SHA256:" + "0" * 64, stdin="x\n", config=tmp_path)
    assert wrong.returncode == 5 and "not added" in wrong.stderr
    pinned = json.loads((added / "remotes.json").read_text())["remotes"]["srv"]["fingerprint"]
    served.stop()
    shutil.rmtree(served.folder / "db" / "tls")  # the next start makes a new certificate
    served.start()
    refused = vmdeck("--remote", "srv", "list", config=added)
    assert refused.returncode == 5
    assert pinned in refused.stderr and "refusing to send the token" in refused.stderr

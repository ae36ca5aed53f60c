"""`vmdeck --remote`: a customer's command line against a real `vmdeck serve --tls-self-signed` with the
customer's own token, compared command by command with the same commands run in-process as root (same
output, same --json, same exit codes); the certificate pinned at first contact; a viewer's token that
cannot start a VM; a revoked token; another project's VM answering exactly like an unknown one."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from itest_support import PREFIX, delete_vm, wait_for
from remote_support import Served, vmdeck

from serving import free_port
from vmdeck.api.hostpaths import hide_host_paths
from vmdeck.host.connection import Host

CUSTOMER_PASSWORD = "remote-customer-password"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("remote-serve"), free_port())
    server.start()
    yield server
    server.close()


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


def _same(here: subprocess.CompletedProcess[str], there: subprocess.CompletedProcess[str], what: object) -> None:
    """Root's answer in-process and the customer's through the server: the same exit code, output and error
    (host folders cut from root's, as the server cuts them for a tenant; table widths set aside)."""
    assert there.returncode == here.returncode, (what, here.stderr, there.stderr)
    assert _words(there.stdout) == _words(_without_folders(here.stdout)), what
    if here.returncode:
        assert there.stderr == _without_folders(here.stderr), what


def test_devices_snapshots_and_keys_answer_the_same(served: Served, added: Path, customer: dict[str, str],
                                                    host: Host) -> None:
    vm = customer["vm"]

    def here(*args: str) -> subprocess.CompletedProcess[str]:
        return vmdeck(*args, db=served.db)  # the server's database: the same projects and quotas

    def there(*args: str) -> subprocess.CompletedProcess[str]:
        return vmdeck("--remote", "srv", *args, config=added)

    # Each change made through the server and undone here, then made here and undone through the server:
    # the same change from the same state, answered the same way, and its effect seen by the other side.
    mac = "52:54:00:7e:01:02"
    for change, undo in (
        (["set", vm, "--memory", "160"], ["set", vm, "--memory", "128", "--json"]),
        (["disk", "add", vm, "--size", "1", "--json"], ["disk", "remove", vm, "vdb", "--delete-volume"]),
        (["nic", "add", vm, "--mac", mac], ["nic", "remove", vm, mac]),
        (["snapshot", "create", vm, "s1", "--description", "first"], ["snapshot", "delete", vm, "s1"]),
    ):
        first, first_undo = there(*change), here(*undo)
        assert first.returncode == 0 and first_undo.returncode == 0, (change, first.stderr, first_undo.stderr)
        second, second_undo = here(*change), there(*undo)
        _same(second, first, change)
        _same(first_undo, second_undo, undo)
    # A disk each side adds, each grown by the other side: the same answer but for the target.
    assert here("disk", "add", vm, "--size", "1").returncode == 0
    assert there("disk", "add", vm, "--size", "1").returncode == 0
    grown_there, grown_here = there("disk", "resize", vm, "vdb", "2"), here("disk", "resize", vm, "vdc", "2")
    _same(grown_here, subprocess.CompletedProcess([], grown_there.returncode, grown_there.stdout.replace("vdb", "vdc"),
                                                  grown_there.stderr), "disk resize")
    assert "1 -> 2 GiB" in grown_there.stdout
    for target in ("vdb", "vdc"):
        assert here("disk", "remove", vm, target, "--delete-volume").returncode == 0
    # The same state read from both sides, and the same refusals.
    assert there("snapshot", "create", vm, "s2").returncode == 0
    for args in (["snapshot", "list", vm], ["snapshot", "list", vm, "--json"], ["cdrom", "eject", vm],
                 ["send-keys", vm, "shift"], ["type", vm, " "],
                 ["snapshot", "revert", vm, "nosuchsnap"], ["disk", "resize", vm, "vda", "0.01"],
                 ["set", "nosuchvm-remote", "--cpus", "1"], ["clone", vm, f"{vm}-full"]):
        _same(here(*args), there(*args), args)
    assert here("snapshot", "delete", vm, "s2").returncode == 0
    # A linked clone through the server lands in the customer's project, seen by their list.
    clone = f"{vm}-c"
    try:
        made = there("clone", vm, clone, "--linked", "--json")
        assert made.returncode == 0, made.stderr
        listed = {v["name"]: v for v in json.loads(there("list", "--json").stdout)}
        assert listed[clone]["project"] == customer["project"]
    finally:
        delete_vm(host, clone)
    for snap in json.loads(here("snapshot", "list", vm, "--json").stdout)["snapshots"]:
        assert here("snapshot", "delete", vm, snap["name"]).returncode == 0


def test_backups_through_the_server(served: Served, added: Path, customer: dict[str, str], host: Host) -> None:
    vm = customer["vm"]

    def here(*args: str) -> subprocess.CompletedProcess[str]:
        return vmdeck(*args, db=served.db, backup_repo=served.backup_repo)

    def there(*args: str) -> subprocess.CompletedProcess[str]:
        return vmdeck("--remote", "srv", *args, config=added)

    _same(here("backup", "list", vm), there("backup", "list", vm), "no backups yet")
    made = there("backup", "create", vm, "--json")
    assert made.returncode == 0, made.stderr
    backup = json.loads(made.stdout)
    assert backup["kind"] == "full" and backup["vm"] == vm
    # The server's answer is the in-process result: the id root's listing shows, with the same message.
    listed_here = json.loads(here("backup", "list", vm, "--json").stdout)
    assert [b["id"] for b in listed_here] == [backup["id"]]
    for args in (["backup", "list", vm], ["backup", "list", vm, "--json"], ["backup", "show", backup["id"]],
                 ["backup", "show", backup["id"], "--json"], ["backup", "verify", backup["id"]],
                 ["backup", "verify", backup["id"], "--json"]):
        _same(here(*args), there(*args), args)
    # A schedule set through the server is root's to see, and removed the same way; prune keeps the one.
    _same(here("backup", "schedule", vm, "--every", "6h", "--keep", "2"),
          there("backup", "schedule", vm, "--every", "6h", "--keep", "2"), "schedule")
    assert vm in here("backup", "schedules").stdout
    removed_here = here("backup", "schedule", vm, "--remove")
    assert vm not in here("backup", "schedules").stdout
    here("backup", "schedule", vm, "--every", "6h", "--keep", "2")
    _same(removed_here, there("backup", "schedule", vm, "--remove"), "unschedule")
    _same(here("backup", "schedule", vm, "--remove"), there("backup", "schedule", vm, "--remove"), "no schedule")
    _same(here("backup", "prune", vm, "--keep-last", "1"), there("backup", "prune", vm, "--keep-last", "1"), "prune")
    # Unknown: exit 3 both sides (root's message names the repository's folder, which a tenant is not told).
    unknown = ["backup", "restore", "nosuchbackup-1", "--as", f"{vm}-x"]
    assert here(*unknown).returncode == there(*unknown).returncode == 3
    restored = f"{vm}-r"
    try:
        back = there("backup", "restore", backup["id"], "--as", restored)
        assert back.returncode == 0, back.stderr
        assert back.stdout.startswith(f"backup {backup['id']} restored as a new VM")
        assert json.loads(there("show", restored, "--json").stdout)["project"] == customer["project"]
    finally:
        delete_vm(host, restored)


def test_serial_console_through_the_server_reaches_the_guest(added: Path, customer: dict[str, str]) -> None:
    """`vmdeck --remote srv console VM` on a terminal: a command typed runs in the guest, Ctrl+] leaves."""
    import os
    import pty
    import select
    import sys
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: the real command line, the customer's config
        try:
            os.environ["VMDECK_CONFIG_DIR"] = str(added)
            os.execv(sys.executable, [sys.executable, "-m", "vmdeck.cli.main", "--remote", "srv", "console",
                                      customer["vm"]])
        finally:
            os._exit(127)
    output = b""

    def read_until(token: bytes, timeout: float = 180) -> bool:
        nonlocal output
        deadline = time.monotonic() + timeout
        while token not in output and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    break
        return token in output

    try:
        assert read_until(b"Ctrl+] leaves"), output
        for _ in range(10):  # the guest's shell prompt first, as a person would wait for it
            os.write(fd, b"\r")
            if read_until(b"# ", timeout=3):
                break
        os.write(fd, b"echo REMOTE$((40+2))SERIAL\r")
        assert read_until(b"REMOTE42SERIAL"), output
        os.write(fd, b"\x1d")
        assert read_until(b"detached"), output
    finally:
        for _ in range(600):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


def test_display_prints_a_link_that_opens_the_screen_once(added: Path, customer: dict[str, str]) -> None:
    """`vmdeck --remote srv display VM`: a URL a browser that never signed in opens once, showing the guest's
    screen (the noVNC canvas draws it); the same URL again is refused in plain words."""
    from playwright.sync_api import expect, sync_playwright

    shown = vmdeck("--remote", "srv", "display", customer["vm"], config=added)
    assert shown.returncode == 0, shown.stderr
    url = shown.stdout.strip()
    assert url.startswith("https://127.0.0.1:") and "/console/" in url, shown.stdout
    assert "once" in shown.stderr
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 800})
            page = context.new_page()
            page.goto(url)
            expect(page.locator("#screen")).to_have_attribute("data-connected", "true", timeout=60_000)
            canvas = page.locator("#screen canvas")
            expect(canvas).to_be_visible()
            # The guest's screen is drawn: its pixels are not all one colour.
            colours = page.evaluate("""() => {
                const c = document.querySelector('#screen canvas');
                const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                const seen = new Set();
                for (let i = 0; i < data.length && seen.size < 3; i += 4 * 97) {
                  seen.add(data[i] * 65536 + data[i + 1] * 256 + data[i + 2]);
                }
                return seen.size;
            }""")
            assert colours > 1
            page.screenshot(path=str(added / "display-link.png"))
            # No session came with it: the VM list is not this page's to open.
            assert context.request.get(url.split("/console/")[0] + "/api/vms").status == 401
            again = context.new_page()
            reply = again.goto(url)
            assert reply is not None and reply.status == 403
            expect(again.locator("#link-refused")).to_contain_text("already used")
        finally:
            browser.close()


def test_hostview_through_the_server_shows_the_vms_own_process(added: Path, customer: dict[str, str],
                                                                  host: Host) -> None:
    """`vmdeck --remote srv hostview VM`: the local renderer's sections for the VM's QEMU (the same pid /proc
    has on this machine), without the host's own facts, which are its administrator's."""
    from vmdeck.vm.inventory import show_vm

    pid = int(Path(f"/run/libvirt/qemu/{customer['vm']}.pid").read_text())
    assert show_vm(host, customer["vm"]).state == "running"
    as_json = vmdeck("--remote", "srv", "hostview", customer["vm"], "--json", config=added)
    assert as_json.returncode == 0, as_json.stderr
    snapshot = json.loads(as_json.stdout)
    assert snapshot["host"] is None and snapshot["vms"][0]["process"]["pid"] == pid
    assert {t["role"] for t in snapshot["vms"][0]["process"]["threads"]} >= {"vcpu"}
    drawn = vmdeck("--remote", "srv", "hostview", customer["vm"], config=added)
    assert drawn.returncode == 0, drawn.stderr
    for section in ("Process", "Scheduling", "Memory", "Storage", "CPU mode"):
        assert section in drawn.stdout, drawn.stdout
    assert str(pid) in drawn.stdout and "THP" not in drawn.stdout and "/var/lib/" not in drawn.stdout
    unknown = vmdeck("--remote", "srv", "hostview", f"{PREFIX}nobody", config=added)
    assert unknown.returncode == 3, unknown.stderr


def test_remote_list_imports_only_what_it_needs(added: Path) -> None:
    """The fast path of `vmdeck --remote R list`: Python, ssl, socket, json and vmdeck's small modules only."""
    probe = ("import json, sys\n"
             "sys.argv = ['vmdeck', '--remote', 'srv', 'list', '--json']\n"
             "from vmdeck.cli.main import main\n"
             "main()\n"
             "print('MODULES=' + json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    import os
    import sys

    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "VMDECK_CONFIG_DIR": str(added), "VMDECK_LOCAL_SOCKET": "off"})
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stderr.split("MODULES=", 1)[1]))
    heavy = {"typer", "click", "rich", "pydantic", "sqlalchemy", "libvirt", "httpx", "http.client", "urllib.request",
             "email", "dataclasses", "inspect", "typing", "pathlib", "hashlib", "urllib.parse", "websockets"}
    assert modules & heavy == set()
    assert {"ssl", "socket", "json"} <= modules
    assert {m for m in modules if m.startswith("vmdeck")} <= {
        "vmdeck", "vmdeck.cli", "vmdeck.cli.main", "vmdeck.errors", "vmdeck.cli.remote_target", "vmdeck.cli.remotes",
        "vmdeck.cli.fast", "vmdeck.cli.remote_client", "vmdeck.cli.wire", "vmdeck.cli.plain"}


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
    assert "was revoked at" in after.stderr, after.stderr  # what happened to it, in words
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

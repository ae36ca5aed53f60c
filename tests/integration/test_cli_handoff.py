"""The `vmdeck` command handing list, start and create to a running `vmdeck serve` (real libvirtd, QEMU).

The server and the commands share a database of the test's own (VMDECK_DB), so the server's socket is
beside it. The audit log tells which way each command went: `cli-socket` through the server, `cli` in
the command's own process. The VM the server starts is checked on the host, in /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from itest_support import PREFIX, VMDECK

from serving import free_port, wait_for_serve
from vmdeck.host.connection import Host
from vmdeck.local_socket import socket_path
from vmdeck.vm import lifecycle


class Serve:
    """`vmdeck serve` on a database of its own; start() may be called again after kill()."""

    def __init__(self, folder: Path) -> None:
        self.db = folder / "web" / "vmdeck.sqlite"
        self.log = folder / "serve.log"
        self.env = {key: value for key, value in os.environ.items() if key != "VMDECK_URI"}
        self.env.update(VMDECK_DB=str(self.db), VMDECK_ADMIN_PASSWORD="handoff-test-password", COLUMNS="200")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = free_port()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "vmdeck.cli.main", "serve", "--port", str(port),
                                             "--db", str(self.db)], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_for_serve(f"http://127.0.0.1:{port}", self.process, self.log)

    def kill(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(30)

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*VMDECK, *args], capture_output=True, text=True, timeout=300,
                              env={**self.env, **env})

    def ways(self, vm: str) -> list[tuple[str, str, int]]:
        """(action, via, status) of the audit entries about `vm`, oldest first."""
        listed = self.cli("audit", "--vm", vm, "--json", "--limit", "100")
        assert listed.returncode == 0, listed.stderr
        return [(e["action"], e["via"], e["status"]) for e in reversed(json.loads(listed.stdout))]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    server = Serve(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill(signal.SIGTERM)


def _line(listing: str, vm: str) -> str:
    return next(line for line in listing.splitlines() if line.split() and line.split()[0] == vm)


def _qemu_pid(vm: str) -> int:
    """The VM's QEMU process, from libvirt's pid file, checked in /proc."""
    pid = int(Path(f"/run/libvirt/qemu/{vm}.pid").read_text())
    assert f"guest={vm}" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
    return pid


def test_list_start_and_create_go_through_the_server_and_print_what_the_command_prints(
        serve: Serve, host: Host) -> None:
    vm, other = f"{PREFIX}handoff-a", f"{PREFIX}handoff-b"
    assert socket_path(serve.db).is_socket()
    try:
        created = serve.cli("create", vm, "-t", "tiny", "--memory", "128")
        assert created.returncode == 0, created.stderr
        assert re.fullmatch(rf"created {vm} from template tiny: 1 vCPU, 128 MiB, (TCG|KVM)\n", created.stdout)
        started = serve.cli("start", vm)
        assert (started.returncode, started.stdout) == (0, f"{vm} started\n"), started.stderr
        assert lifecycle.current_state(host.lookup(vm)) == "running"
        _qemu_pid(vm)

        # The same table and the same JSON as the command makes in-process.
        served, direct = serve.cli("list"), serve.cli("list", VMDECK_LOCAL_SOCKET="off")
        assert served.returncode == direct.returncode == 0, served.stderr + direct.stderr
        assert _line(served.stdout, vm) == _line(direct.stdout, vm)
        assert f" {vm} " in _line(served.stdout, vm) and " running " in _line(served.stdout, vm)
        as_json = {e["name"]: e for e in json.loads(serve.cli("list", "--json").stdout)}[vm]
        direct_json = {e["name"]: e for e in json.loads(serve.cli("list", "--json", VMDECK_LOCAL_SOCKET="off").stdout)}[vm]
        assert as_json.keys() == direct_json.keys()
        assert {k: as_json[k] for k in ("state", "vcpus", "memory_mib", "project", "host")} == \
            {k: direct_json[k] for k in ("state", "vcpus", "memory_mib", "project", "host")}

        # Errors keep the exit code and message they have in-process.
        again = serve.cli("start", vm)
        assert again.returncode == 4 and again.stderr.startswith(f"error: cannot start VM '{vm}': it is running")
        missing = serve.cli("start", f"{PREFIX}handoff-none")
        assert missing.returncode == 3 and "no VM named" in missing.stderr
        assert serve.ways(vm) == [("vm.create", "cli-socket", 201), ("vm.power", "cli-socket", 200),
                                  ("vm.power", "cli-socket", 409)]

        # Another template folder is another context: the server declines and the command does it itself.
        declined = serve.cli("create", other, "-t", "tiny", VMDECK_CONFIG_DIR=str(serve.db.parent / "elsewhere"))
        assert declined.returncode == 0, declined.stderr
        # The same use case either way: the same audit line (201), and a start in-process is audited too.
        assert serve.ways(other) == [("vm.create", "cli", 201)]
        assert serve.cli("start", other, VMDECK_LOCAL_SOCKET="off").returncode == 0
        assert serve.ways(other) == [("vm.create", "cli", 201), ("vm.power", "cli", 200)]
    finally:
        for name in (vm, other):
            with contextlib.suppress(Exception):
                lifecycle.delete(host, name, force=True)


def test_a_killed_server_leaves_a_socket_the_command_and_the_next_server_get_past(serve: Serve) -> None:
    path = socket_path(serve.db)
    serve.kill(signal.SIGKILL)
    assert path.is_socket()  # nobody removed it
    listed = serve.cli("list")
    assert listed.returncode == 0, listed.stderr  # in-process, as without a server
    serve.start()  # replaces the socket nobody answered on
    vm = f"{PREFIX}handoff-c"
    try:
        assert serve.cli("create", vm, "-t", "tiny").returncode == 0
        assert serve.ways(vm) == [("vm.create", "cli-socket", 201)]
    finally:
        assert serve.cli("delete", vm, "--force").returncode == 0
    serve.kill(signal.SIGTERM)
    assert not path.exists()  # a server that stops cleanly takes its socket with it

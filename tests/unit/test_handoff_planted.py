"""A listener another local user plants on the hand-off socket is refused, by the command and the server.

The database's folder is world-writable here (the case of the finding): `nobody` (a real process run
through setpriv) binds vmdeck.sock there and answers every request with a fake VM list. The command
must neither show that list nor send it anything, and `vmdeck serve` must take the path back.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmdeck.api.local_socket import bind_local_socket
from vmdeck.cli.handoff import LocalServer
from vmdeck.local_socket import socket_path

# The system Python: root's own interpreter may sit in a folder `nobody` cannot read.
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c"]
# Answers every connection with a fake `vmdeck list` and reports each request's size on stdout.
PLANTED = r"""
import json, socket, sys
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
listener.listen(8)
print("LISTENING", flush=True)
fake = json.dumps([{"name": "FAKE-VM", "state": "running", "vcpus": 1, "memory_mib": 1, "persistent": True,
                    "cpu_time_ns": 0, "rss_kib": None, "allowed_actions": [], "project": "default",
                    "host": "local"}]).encode()
while True:
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(5)
        try:
            got = conn.recv(65536)
        except OSError:
            got = b""
        print("GOT", len(got), flush=True)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(fake) + fake)
"""
NODE_XML = """<node><cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>2</cores>
<threads>1</threads></cpu><memory>4194304</memory>
<domain type='test'><name>real-vm</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os></domain></node>"""


class Planted:
    def __init__(self, folder: Path) -> None:
        self.path = socket_path(folder / "vmdeck.sqlite")
        self.process = subprocess.Popen([*AS_NOBODY, PLANTED, str(self.path)], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "LISTENING"

    def next_line(self, timeout: float = 60) -> str:
        """The listener's next report (the connection it saw), waiting for it on a loaded machine."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        return self.process.stdout.readline().strip() if ready else ""

    def requests(self) -> list[str]:
        self.process.kill()
        out, _ = self.process.communicate(timeout=30)
        return [line for line in out.splitlines() if line.startswith("GOT")]


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A database folder every local user can write (and the planted listener in it)."""
    folder = Path(tempfile.mkdtemp(prefix="vmdeck-open-", dir="/tmp"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def planted(open_folder: Path) -> Iterator[Planted]:
    listener = Planted(open_folder)
    yield listener
    if listener.process.poll() is None:
        listener.process.kill()
        listener.process.wait(timeout=30)


def test_vmdeck_list_refuses_a_planted_socket_and_lists_the_real_vms(planted: Planted, open_folder: Path) -> None:
    assert planted.path.stat().st_uid != 0  # nobody's
    node = open_folder / "node.xml"
    node.write_text(NODE_XML)
    env = {k: v for k, v in os.environ.items() if k not in ("VMDECK_LOCAL_SOCKET", "NO_COLOR")}
    env.update(VMDECK_DB=str(open_folder / "vmdeck.sqlite"), VMDECK_URI=f"test://{node}")
    done = subprocess.run([sys.executable, "-m", "vmdeck.cli.main", "list"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "real-vm" in done.stdout and "FAKE-VM" not in done.stdout
    assert f"not using the vmdeck serve socket {planted.path}: it belongs to user nobody" in done.stderr
    assert planted.requests() == []  # not even connected to: nothing of the command reached it


def test_a_listener_behind_a_root_owned_file_is_refused_by_its_credentials(planted: Planted,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The file may be swapped after the owner check (a folder others can write): the peer's user decides."""
    os.chown(planted.path, 0, 0)  # as if the check had seen root's socket, then nobody's listener took over
    assert LocalServer(planted.path, None).call("POST", "/api/vms", {"name": "secret"}) is None
    assert "the process listening there runs as user nobody" in capsys.readouterr().err
    assert planted.next_line() == "GOT 0"  # connected, then closed without sending a byte


def test_vmdeck_serve_takes_the_path_back_from_a_planted_listener(planted: Planted) -> None:
    listener, why_not = bind_local_socket(planted.path)
    try:
        assert listener is not None, why_not
        assert planted.path.stat().st_uid == os.geteuid() and planted.path.stat().st_mode & 0o777 == 0o600
    finally:
        if listener is not None:
            listener.close()


def test_a_socket_of_the_same_user_is_still_used(tmp_path: Path) -> None:
    path = tmp_path / "vmdeck.sock"
    own = socket.socket(socket.AF_UNIX)
    own.bind(str(path))
    own.listen(1)
    try:
        listener, why_not = bind_local_socket(path)
        assert listener is None and "another vmdeck serve answers" in why_not
    finally:
        own.close()

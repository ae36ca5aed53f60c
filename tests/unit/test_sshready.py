"""Reachable by ssh (vm/sshready.py): cloud-init finished through the agent, then a real SSH banner.

The guest side is played on 127.0.0.1: a listener that resets its first connections, as QEMU's
user-mode forward does while sshd is not up yet, then sends a banner; and a guest agent whose
/run/cloud-init/result.json appears on a given call. Each change happens on a count of calls,
so nothing here depends on timing.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vmdeck.errors import GuestError, VmdeckError
from vmdeck.host.libvirt_api import GUEST_FILE_MISSING
from vmdeck.vm.sshready import ssh_banner, ssh_gate, wait_reachable

GOLDEN = Path(__file__).parent / "data" / "golden" / "debian-12-seeded.xml"


class FakeSshd:
    """Resets the first `resets` connections (no banner), then greets like OpenSSH."""

    def __init__(self, resets: int) -> None:
        self.resets = resets
        self.accepted = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.accepted += 1
                if self.accepted <= self.resets:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
                else:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
                    conn.recv(16)


@pytest.fixture
def sshd_after_two_resets() -> Iterator[FakeSshd]:
    sshd = FakeSshd(resets=2)
    yield sshd
    sshd.sock.close()


@dataclass
class FakeDomain:
    """The parts of host.libvirt_api.Domain that sshready uses; cloud-init finishes on agent call `done_on`."""

    xml_text: str
    done_on: int
    name: str = "deb"
    calls: list[str] = field(default_factory=list)
    running: bool = True

    def xml(self) -> str:
        return self.xml_text

    def state(self) -> tuple[str, str]:
        return ("running", "booted") if self.running else ("shut off", "destroyed")

    def agent_command(self, command_json: str, timeout: int, *, context: str = "agent") -> str:
        request = json.loads(command_json)
        if request["execute"] == "guest-file-close":
            return '{"return": {}}'
        path = request["arguments"]["path"]
        self.calls.append(path)
        if path.endswith("result.json") and len(self.calls) < self.done_on:
            missing = VmdeckError(f"failed to open file '{path}' (mode: 'r'): No such file or directory")
            missing.cause = GUEST_FILE_MISSING  # as the libvirt boundary classifies the agent's answer
            raise missing
        return '{"return": 1000}'


@dataclass
class FakeHost:
    dom: FakeDomain
    is_local: bool = True

    def lookup(self, name: str) -> FakeDomain:
        return self.dom


def _guest(port: int, done_on: int) -> FakeHost:
    return FakeHost(FakeDomain(GOLDEN.read_text().replace("127.0.0.1:40022-:22", f"127.0.0.1:{port}-:22"), done_on))


def test_banner_is_read_and_a_reset_or_a_closed_port_is_none(sshd_after_two_resets: FakeSshd) -> None:
    port = sshd_after_two_resets.port
    assert ssh_banner("127.0.0.1", port) is None
    assert ssh_banner("127.0.0.1", port) is None
    assert ssh_banner("127.0.0.1", port) == b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
    free = socket.create_server(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()
    assert ssh_banner("127.0.0.1", closed_port) is None


def test_waits_for_cloud_init_then_the_banner_and_says_so(sshd_after_two_resets: FakeSshd) -> None:
    host = _guest(sshd_after_two_resets.port, done_on=3)  # result.json on the 3rd look (enabled in between)
    said: list[str] = []
    wait_reachable(host, "deb", 60, said.append, poll=0.01)  # type: ignore[arg-type]
    # Not one connection while cloud-init ran; then two resets, then the banner.
    assert host.dom.calls == ["/run/cloud-init/result.json", "/run/cloud-init/enabled", "/run/cloud-init/result.json"]
    assert sshd_after_two_resets.accepted == 3
    assert len(said) == 2 and "cloud-init is still running" in said[0]
    assert f"SSH does not answer on 127.0.0.1:{sshd_after_two_resets.port}" in said[1]


def test_deadline_names_what_is_missing(sshd_after_two_resets: FakeSshd) -> None:
    host = _guest(sshd_after_two_resets.port, done_on=10**6)
    with pytest.raises(GuestError, match=r"not reachable by ssh after 0.2 s: cloud-init is still running"):
        wait_reachable(host, "deb", 0.2, poll=0.01)  # type: ignore[arg-type]
    assert sshd_after_two_resets.accepted == 0


def test_a_vm_that_stops_ends_the_wait(sshd_after_two_resets: FakeSshd) -> None:
    host = _guest(sshd_after_two_resets.port, done_on=10**6)
    host.dom.running = False
    with pytest.raises(GuestError, match="shut off"):
        wait_reachable(host, "deb", 60, poll=0.01)  # type: ignore[arg-type]


def test_only_image_vms_wait_for_ssh_unless_asked() -> None:
    tiny = FakeDomain((GOLDEN.parent / "tiny.xml").read_text(), done_on=1)
    assert ssh_gate(FakeHost(tiny), tiny) is None  # type: ignore[arg-type]
    seeded = _guest(22, done_on=1)
    gate = ssh_gate(seeded, seeded.dom)  # type: ignore[arg-type]
    assert gate is not None and gate.cloud_init and gate.forward is not None and gate.forward.host_port == 22
    remote = ssh_gate(FakeHost(seeded.dom, is_local=False), seeded.dom)  # type: ignore[arg-type]
    assert remote is not None and remote.forward is None  # another host's loopback: cloud-init only

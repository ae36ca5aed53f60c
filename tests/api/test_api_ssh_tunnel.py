"""The SSH tunnel websocket (vmdeck.api.ssh_tunnel): admitted like the consoles (a single-use ticket of kind
"ssh", this user, this VM), then bytes both ways to the VM's SSH port forward on loopback; a fake sshd
stands for the guest's, so bytes really cross the tunnel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from webapi_helpers import greeting_server

from vmdeck.host.connection import Host

BANNER = b"SSH-2.0-fake\r\n"


@pytest.fixture
def fake_sshd() -> Iterator[int]:
    """A loopback server that greets like sshd and echoes what it receives in capitals."""
    with greeting_server(BANNER) as port:
        yield port


def _define(host: Host, name: str, forward: str) -> str:
    xml = f"""<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
      <os><type arch='x86_64'>hvm</type></os><devices>{forward}</devices></domain>"""
    host.conn.raw.defineXML(xml).create()
    return name


@pytest.fixture
def ssh_vm(test_host: Host, fake_sshd: int) -> str:
    return _define(test_host, "sshvm", f"""<interface type='user'>
      <portForward proto='tcp' address='127.0.0.1'><range start='{fake_sshd}' to='22'/></portForward></interface>""")


def _ticket(client: TestClient, vm: str, kind: str = "ssh") -> str:
    reply = client.post(f"/api/vms/{vm}/console/ticket", json={"kind": kind})
    assert reply.status_code == 200, reply.text
    if kind == "ssh":
        assert reply.json()["path"] == f"/api/vms/{vm}/ssh?ticket={reply.json()['ticket']}"
    return str(reply.json()["ticket"])


def _refused(client: TestClient, path: str) -> int:
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(path):
        pass
    return refused.value.code


def test_the_tunnel_reaches_the_forward_once_per_ticket(client: TestClient, ssh_vm: str) -> None:
    path = f"/api/vms/{ssh_vm}/ssh?ticket={_ticket(client, ssh_vm)}"
    with client.websocket_connect(path) as ws:
        assert ws.receive_bytes() == BANNER
        ws.send_bytes(b"hello sshd")
        assert ws.receive_bytes() == b"HELLO SSHD"
    assert _refused(client, path) == 1008  # spent


def test_no_ticket_or_another_kind_is_refused(client: TestClient, ssh_vm: str) -> None:
    assert _refused(client, f"/api/vms/{ssh_vm}/ssh") == 1008
    serial = _ticket(client, ssh_vm, "serial")
    assert _refused(client, f"/api/vms/{ssh_vm}/ssh?ticket={serial}") == 1008


def test_a_vm_without_a_forward_closes_saying_so(client: TestClient, test_host: Host) -> None:
    name = _define(test_host, "noforward", "")
    path = f"/api/vms/{name}/ssh?ticket={_ticket(client, name)}"
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(path):
        pass
    assert closed.value.code == 1011 and "port 22" in (closed.value.reason or "")

"""Console tickets and the websocket proxy: who gets through and who is refused.

The positive path bridges to a fake VNC server on loopback (the test driver's
domain says where its display listens), so bytes really cross the proxy.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from webapi_helpers import AppFactory, greeting_server, sign_in

from vmdeck.host.connection import Host

GREETING = b"RFB 003.008\n"


@pytest.fixture
def fake_vnc() -> Iterator[int]:
    """A loopback server that greets like VNC and echoes what it receives in capitals."""
    with greeting_server(GREETING) as port:
        yield port


@pytest.fixture
def screen_vm(test_host: Host, fake_vnc: int) -> str:
    xml = f"""<domain type='test'><name>screen</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
      <os><type arch='x86_64'>hvm</type></os>
      <devices><graphics type='vnc' port='{fake_vnc}' autoport='no' listen='127.0.0.1'/></devices></domain>"""
    test_host.conn.raw.defineXML(xml).create()
    return "screen"


@pytest.fixture
def socket_screen_vm(test_host: Host, tmp_path: Path) -> str:
    """A VM whose VNC listens on a Unix socket, as vmdeck's templates render it (a fake server there)."""
    path = tmp_path / "vnc.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(GREETING)
            while data := conn.recv(4096):
                conn.sendall(data[::-1])

    threading.Thread(target=serve, daemon=True).start()
    xml = f"""<domain type='test'><name>sockscreen</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
      <os><type arch='x86_64'>hvm</type></os>
      <devices><graphics type='vnc'><listen type='socket' socket='{path}'/></graphics></devices></domain>"""
    test_host.conn.raw.defineXML(xml).create()
    return "sockscreen"


def _ticket(client: TestClient, vm: str, kind: str = "vnc") -> str:
    reply = client.post(f"/api/vms/{vm}/console/ticket", json={"kind": kind})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["path"] == f"/api/vms/{vm}/console/{kind}?ticket={body['ticket']}"
    assert 0 < body["expires_in"] <= 30
    return body["ticket"]


def _refused(client: TestClient, path: str, **headers: str) -> int:
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(path, headers=headers):
        pass
    return refused.value.code


def test_ticket_opens_the_screen_once(client: TestClient, screen_vm: str) -> None:
    ticket = _ticket(client, screen_vm)
    path = f"/api/vms/{screen_vm}/console/vnc?ticket={ticket}"
    with client.websocket_connect(path, subprotocols=["binary"]) as ws:
        assert ws.accepted_subprotocol == "binary"
        assert ws.receive_bytes() == GREETING
        ws.send_bytes(b"hello vnc")
        assert ws.receive_bytes() == b"HELLO VNC"
    assert _refused(client, path) == 1008  # single use


def test_proxy_reaches_a_display_on_a_unix_socket(client: TestClient, socket_screen_vm: str) -> None:
    ticket = _ticket(client, socket_screen_vm)
    with client.websocket_connect(f"/api/vms/{socket_screen_vm}/console/vnc?ticket={ticket}",
                                  subprotocols=["binary"]) as ws:
        assert ws.receive_bytes() == GREETING
        ws.send_bytes(b"over the socket")
        assert ws.receive_bytes() == b"tekcos eht revo"


def test_an_unreachable_vnc_socket_closes_the_console_saying_so(client: TestClient, test_host: Host,
                                                                tmp_path: Path) -> None:
    xml = f"""<domain type='test'><name>nosock</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
      <os><type arch='x86_64'>hvm</type></os>
      <devices><graphics type='vnc'><listen type='socket' socket='{tmp_path}/gone.sock'/></graphics></devices></domain>"""
    test_host.conn.raw.defineXML(xml).create()
    ticket = _ticket(client, "nosock")
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect(f"/api/vms/nosock/console/vnc?ticket={ticket}") as ws:
        ws.receive_bytes()
    assert closed.value.code == 1011 and "cannot reach the VM's VNC server" in closed.value.reason


def test_no_ticket_is_refused(client: TestClient, screen_vm: str) -> None:
    assert _refused(client, f"/api/vms/{screen_vm}/console/vnc") == 1008
    assert _refused(client, f"/api/vms/{screen_vm}/console/vnc?ticket=made-up") == 1008


def test_expired_ticket_is_refused(client: TestClient, screen_vm: str) -> None:
    tickets = client.app.state.ctx.tickets
    now = [1000.0]
    tickets.clock = lambda: now[0]
    ticket = _ticket(client, screen_vm)
    now[0] += tickets.ttl + 1
    assert _refused(client, f"/api/vms/{screen_vm}/console/vnc?ticket={ticket}") == 1008


def test_ticket_for_another_vm_or_console_is_refused(client: TestClient, screen_vm: str) -> None:
    ticket = _ticket(client, "busy")
    assert _refused(client, f"/api/vms/{screen_vm}/console/vnc?ticket={ticket}") == 1008
    serial = _ticket(client, screen_vm, "serial")
    assert _refused(client, f"/api/vms/{screen_vm}/console/vnc?ticket={serial}") == 1008


def test_foreign_origin_is_refused(client: TestClient, screen_vm: str) -> None:
    ticket = _ticket(client, screen_vm)
    path = f"/api/vms/{screen_vm}/console/vnc?ticket={ticket}"
    assert _refused(client, path, origin="http://evil.example") == 1008
    # The refusal spent the ticket: a second try from the right origin gets nothing either.
    assert _refused(client, path, origin="http://testserver") == 1008


def test_same_origin_is_admitted(client: TestClient, screen_vm: str) -> None:
    ticket = _ticket(client, screen_vm)
    with client.websocket_connect(f"/api/vms/{screen_vm}/console/vnc?ticket={ticket}",
                                  headers={"origin": "http://testserver"}) as ws:
        assert ws.receive_bytes() == GREETING


def test_ticket_of_another_user_is_refused(client: TestClient, make_app: AppFactory, screen_vm: str) -> None:
    client.post("/api/auth/users", json={"username": "bob", "password": "bobs-password"})
    ticket = _ticket(client, screen_vm)
    with TestClient(make_app()) as bob:
        sign_in(bob, "bob", "bobs-password")
        assert _refused(bob, f"/api/vms/{screen_vm}/console/vnc?ticket={ticket}") == 1008
    with TestClient(make_app()) as anonymous:
        ticket = _ticket(client, screen_vm)
        assert _refused(anonymous, f"/api/vms/{screen_vm}/console/vnc?ticket={ticket}") == 1008


def test_ticket_requests_are_checked(client: TestClient, anon: TestClient) -> None:
    assert client.post("/api/vms/ghost/console/ticket", json={}).status_code == 404
    bad = client.post("/api/vms/busy/console/ticket", json={"kind": "spice"})
    assert bad.status_code == 422 and bad.json()["field"] == "kind"
    client.post("/api/vms/busy/poweroff")
    stopped = client.post("/api/vms/busy/console/ticket", json={"kind": "vnc"})
    assert stopped.status_code == 409 and stopped.json()["error"] == "wrong_state"


def _closed(client: TestClient, path: str) -> tuple[int, str]:
    """(code, reason) of a console admitted, then closed by the server before any byte."""
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(path) as ws:
        ws.receive_bytes()
    return closed.value.code, closed.value.reason


def test_vm_without_display_closes_after_admission(client: TestClient) -> None:
    # "busy" has no graphics: the ticket is fine, so the close is the server's (1011, after the handshake,
    # with the reason for the page), not a policy refusal.
    ticket = _ticket(client, "busy")
    code, reason = _closed(client, f"/api/vms/busy/console/vnc?ticket={ticket}")
    assert code == 1011 and "no graphical console" in reason


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    lines = [r.getMessage() for r in caplog.records if r.name == "vmdeck.api.console"]
    assert len(lines) == 1 and "\n" not in lines[0], lines


@pytest.mark.parametrize("display", ["websocket", "tcp"])
def test_a_display_whose_qemu_is_gone_closes_cleanly(client: TestClient, test_host: Host, display: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    # A snapshot revert restarts QEMU under a console that reconnects: the VM is running by libvirt's
    # account, but nothing listens where its display was (QEMU's websocket port, or its VNC port).
    port, websocket = _closed_port(), _closed_port()
    extra = f"websocket='{websocket}'" if display == "websocket" else ""
    xml = f"""<domain type='test'><name>reverting</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
      <os><type arch='x86_64'>hvm</type></os>
      <devices><graphics type='vnc' port='{port}' {extra} autoport='no' listen='127.0.0.1'/></devices></domain>"""
    test_host.conn.raw.defineXML(xml).create()
    ticket = _ticket(client, "reverting")
    caplog.set_level("INFO")
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect(f"/api/vms/reverting/console/vnc?ticket={ticket}",
                                     subprotocols=["binary"]) as ws:
        ws.receive_bytes()
    assert closed.value.code == 1011 and "cannot reach the VM's VNC server" in closed.value.reason
    _no_traceback(caplog)


def test_a_vm_stopped_after_its_ticket_closes_cleanly(client: TestClient, screen_vm: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    ticket = _ticket(client, screen_vm)
    assert client.post(f"/api/vms/{screen_vm}/poweroff").status_code == 200
    caplog.set_level("INFO")
    code, reason = _closed(client, f"/api/vms/{screen_vm}/console/vnc?ticket={ticket}")
    assert code == 1011 and "shut off" in reason
    _no_traceback(caplog)

"""VM endpoints on libvirt's test driver: every verb and each error status with its JSON body."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def _error(reply, status: int, kind: str, field: str | None = None) -> str:  # type: ignore[no-untyped-def]
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error"] == kind, body
    assert body["field"] == field, body
    assert body["detail"] and "\n" not in body["detail"]
    return body["detail"]


def test_list_and_show(client: TestClient) -> None:
    vms = client.get("/api/vms").json()
    assert [(v["name"], v["state"], v["vcpus"]) for v in vms] == [("busy", "running", 1)]
    assert vms[0]["allowed_actions"] == ["shutdown", "poweroff", "reboot", "reset", "pause", "delete"]
    shown = client.get("/api/vms/busy").json()
    assert shown["name"] == "busy" and shown["state"] == "running" and shown["memory_mib"] == 256
    assert shown["allowed_actions"] == vms[0]["allowed_actions"]
    assert "ghost" in _error(client.get("/api/vms/ghost"), 404, "not_found")


def test_create_show_power_and_delete(client: TestClient) -> None:
    created = client.post("/api/vms", json={"name": "web1", "template": "q35-virtio", "vcpus": 2, "memory_mib": 512,
                                            "disk_gib": 2})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["vcpus"], body["memory_mib"], body["state"]) == (2, 512, "shut off")
    assert body["owned_volumes"] and body["owned_volumes"][0].endswith("web1-vda.qcow2")
    assert client.post("/api/vms/web1/start").json() == {
        "name": "web1", "state": "running", "result": "started",
        "allowed_actions": ["shutdown", "poweroff", "reboot", "reset", "pause", "delete"],
        "can": {"active": True, "console": True, "migrate_live": True, "migrate_offline": False, "snapshot": True,
                "snapshot_memory": True, "sample": True}}
    assert client.post("/api/vms/web1/pause").json()["state"] == "paused"
    assert client.post("/api/vms/web1/resume").json()["state"] == "running"
    assert client.post("/api/vms/web1/reset").json()["state"] == "running"
    assert client.post("/api/vms/web1/poweroff").json()["state"] == "shut off"
    assert client.post("/api/vms/web1/start", json={"wait": False}).json()["state"] == "running"
    running = client.delete("/api/vms/web1")
    _error(running, 409, "wrong_state")
    deleted = client.delete("/api/vms/web1", params={"force": True})
    assert deleted.status_code == 200 and deleted.json()["removed_volumes"] == body["owned_volumes"]
    _error(client.get("/api/vms/web1"), 404, "not_found")


def test_create_with_start(client: TestClient) -> None:
    created = client.post("/api/vms", json={"name": "quick", "template": "q35-virtio", "start": True})
    assert created.status_code == 201 and created.json()["state"] == "running"


@pytest.mark.parametrize(("body", "status", "kind", "field"), [
    ({"name": "bad name!", "template": "q35-virtio"}, 422, "invalid_input", "name"),
    ({"name": "big", "template": "q35-virtio", "vcpus": 200}, 422, "invalid_input", "vcpus"),
    ({"name": "big", "template": "q35-virtio", "memory_mib": 64 * 1024}, 422, "invalid_input", "memory_mib"),
    ({"name": "neg", "template": "q35-virtio", "vcpus": 0}, 422, "invalid_input", "vcpus"),
    ({"name": "x", "template": "no-such-template"}, 404, "not_found", None),
    ({"name": "x", "template": "q35-virtio", "cdrom": "/etc/passwd"}, 422, "invalid_input", "cdrom"),
    ({"name": "x", "template": "q35-virtio", "cdrom": "missing.iso"}, 404, "not_found", None),
    ({"name": "x", "template": "q35-virtio", "accel": "warp"}, 422, "invalid_input", "accel"),
    ({"template": "q35-virtio"}, 422, "invalid_input", "name"),
    ({"name": "busy", "template": "q35-virtio"}, 409, "conflict", None),
])
def test_create_errors_name_the_field(client: TestClient, body: dict, status: int, kind: str,
                                      field: str | None) -> None:
    _error(client.post("/api/vms", json=body), status, kind, field)
    assert [v["name"] for v in client.get("/api/vms").json()] == ["busy"]  # nothing half-made


def test_malformed_json_is_422(client: TestClient) -> None:
    reply = client.post("/api/vms", content=b"{oops", headers={"content-type": "application/json"})
    assert reply.status_code == 422 and reply.json()["error"] == "invalid_input"


def test_power_verbs_check_the_state(client: TestClient) -> None:
    detail = _error(client.post("/api/vms/busy/start"), 409, "wrong_state")
    assert "it is running" in detail
    _error(client.post("/api/vms/busy/resume"), 409, "wrong_state")
    _error(client.post("/api/vms/ghost/poweroff"), 404, "not_found")
    assert client.post("/api/vms/busy/poweroff").json()["state"] == "shut off"
    _error(client.post("/api/vms/busy/pause"), 409, "wrong_state")
    _error(client.post("/api/vms/busy/shutdown", json={"timeout": 1}), 409, "wrong_state")
    _error(client.post("/api/vms/busy/shutdown", json={"timeout": -1}), 422, "invalid_input", "timeout")


def test_exec_errors(client: TestClient) -> None:
    # The test driver's domain has no guest agent channel: the guest cannot answer -> 502.
    _error(client.post("/api/vms/busy/exec", json={"command": ["uname"]}), 502, "guest_unavailable")
    _error(client.post("/api/vms/busy/exec", json={"command": []}), 422, "invalid_input", "command")
    client.post("/api/vms/busy/poweroff")
    _error(client.post("/api/vms/busy/exec", json={"command": ["uname"]}), 409, "wrong_state")


def test_templates(client: TestClient) -> None:
    names = [t["name"] for t in client.get("/api/templates").json()]
    assert {"tiny", "q35-virtio", "legacy-pc"} <= set(names)
    tiny = client.get("/api/templates/tiny").json()
    assert tiny["origin"] == "builtin" and tiny["vcpus"] >= 1
    _error(client.get("/api/templates/nope"), 404, "not_found")


def test_host(client: TestClient) -> None:
    host = client.get("/api/host").json()
    assert host["pcpus"] == 4 and host["memory_mib"] == 8192
    assert host["vms_running"] == 1 and host["vcpus_running"] == 1 and host["vcpu_overcommit"] == 0.25
    assert host["kvm_usable"] is False and host["kvm_reason"]


def test_host_down_is_503(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from webapi_helpers import sign_in

    from vmdeck.api import Settings, create_app

    app = create_app(Settings(uri=f"qemu+unix:///system?socket={tmp_path}/no-libvirtd.sock",
                              db_path=tmp_path / "down.sqlite", admin_password="pw-for-down-host", events=False,
                              allowed_hosts=("testserver",)))
    with TestClient(app) as down:
        sign_in(down, password="pw-for-down-host")
        _error(down.get("/api/vms"), 503, "host_unavailable")


def test_openapi_document_is_served(client: TestClient) -> None:
    doc = client.get("/api/openapi.json").json()
    assert doc["info"]["title"] == "vmdeck"
    for path in ("/api/vms", "/api/vms/{name}/start", "/api/vms/{name}/console/ticket", "/api/isos/{name}"):
        assert path in doc["paths"]


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    _error(client.get("/api/nothing-here"), 404, "not_found")
    _error(client.put("/api/vms"), 405, "method_not_allowed")


def test_patch_changes_resources_in_the_definition(client: TestClient) -> None:
    assert client.post("/api/vms", json={"name": "web2", "template": "q35-virtio"}).status_code == 201
    changed = client.patch("/api/vms/web2", json={"vcpus": 3, "memory_mib": 1024})
    assert changed.json() == {"name": "web2", "vcpus": 3, "memory_mib": 1024, "applies": "now"}, changed.text
    shown = client.get("/api/vms/web2").json()
    assert (shown["vcpus"], shown["memory_mib"]) == (3, 1024)
    _error(client.patch("/api/vms/web2", json={"vcpus": 0}), 422, "invalid_input", "vcpus")
    _error(client.patch("/api/vms/web2", json={}), 422, "invalid_input")
    _error(client.patch("/api/vms/ghost", json={"vcpus": 1}), 404, "not_found")


def test_patch_sets_boot_order_and_autostart_and_errors_speak_the_forms_words(client: TestClient) -> None:
    assert client.post("/api/vms", json={"name": "web3", "template": "q35-virtio"}).status_code == 201
    changed = client.patch("/api/vms/web3", json={"boot_order": ["cdrom", "hd"], "autostart": True})
    assert changed.json() == {"name": "web3", "boot_order": ["cdrom", "hd"], "autostart": True}, changed.text
    shown = client.get("/api/vms/web3").json()
    assert shown["boot_order"] == ["cdrom", "hd"] and shown["autostart"] is True
    _error(client.patch("/api/vms/web3", json={"boot_order": ["floppy"]}), 422, "invalid_input", "boot_order.0")
    # Limits from the host, named as the form labels them (the test driver's node has 8 GiB).
    host_mib = client.get("/api/host").json()["memory_mib"]
    detail = _error(client.patch("/api/vms/web3", json={"memory_mib": host_mib + 1}), 422, "invalid_input", "memory_mib")
    assert detail == f"Memory (MiB) must be at most {host_mib} on this host"
    detail = _error(client.post("/api/vms", json={"name": "web4", "memory_mib": 8}), 422, "invalid_input", "memory_mib")
    assert detail == "Memory (MiB) must be at least 32"
    detail = _error(client.post("/api/vms", json={"name": "web4", "vcpus": "many"}), 422, "invalid_input", "vcpus")
    assert detail == "vCPUs must be a whole number"


def test_create_with_a_tpm_as_the_cli_does(client: TestClient) -> None:
    """`tpm` in the create body is `vmdeck create --tpm`: the definition gets an emulated TPM 2.0."""
    created = client.post("/api/vms", json={"name": "tpm1", "template": "q35-virtio", "tpm": True})
    assert created.status_code == 201, created.text
    assert client.get("/api/vms/tpm1").json()["tpm"] == "2.0"
    plain = client.post("/api/vms", json={"name": "notpm1", "template": "q35-virtio"})
    assert plain.status_code == 201, plain.text
    assert client.get("/api/vms/notpm1").json()["tpm"] is None
    assert client.post("/api/vms", json={"name": "tpm2", "tpm": "yes please"}).status_code == 422
    for name in ("tpm1", "notpm1"):
        assert client.delete(f"/api/vms/{name}").status_code in (200, 204)

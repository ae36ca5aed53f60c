"""The vmdeck command line through a server asks for vmdeck's own error messages (X-Vmdeck-Messages: plain),
so it prints what the in-process command prints; the web pages keep the wording made for their forms."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_the_command_line_gets_the_core_message(client: TestClient) -> None:
    body = {"name": "bad name!", "template": "tiny"}
    for_forms = client.post("/api/vms", json=body)
    plain = client.post("/api/vms", json=body, headers={"X-Vmdeck-Messages": "plain"})
    assert for_forms.status_code == plain.status_code == 422
    assert plain.json()["field"] == for_forms.json()["field"] == "name"
    assert plain.json()["detail"].startswith("invalid VM name"), plain.json()
    assert for_forms.json()["detail"] != plain.json()["detail"]

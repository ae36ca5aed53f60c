"""Property-based fuzzing of the REST API from its own OpenAPI document (schemathesis), in-process
on libvirt's test driver: no response is a crash (500), and every error is a JSON body of vmdeck's shape.

The test driver cannot hot-plug devices and its VMs have no guest agent, so an honest 503
("host cannot do that") or 502 ("guest did not answer") may come back; those must carry the
matching error kind. A bare 500 is always a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CheckContext
from webapi_helpers import AppFactory

_ENVIRONMENT_5XX = {502: "guest_unavailable", 503: "host_unavailable"}


@pytest.fixture
def fuzz_app(make_app: AppFactory) -> Iterator[tuple[FastAPI, str]]:
    app = make_app(events=False)
    with TestClient(app) as client:
        from webapi_helpers import sign_in

        client.headers["X-CSRF-Token"] = sign_in(client)
        token = client.post("/api/auth/tokens", json={"name": "fuzz"}).json()["token"]
    yield app, token


@pytest.fixture
def api_schema(fuzz_app: tuple[FastAPI, str]) -> schemathesis.BaseSchema:
    app, token = fuzz_app
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, headers={"Authorization": f"Bearer {token}"})
    # Keep the fuzzer's own credentials alive: it must not revoke its token or sign itself out.
    return (schema.exclude(path="/api/auth/tokens/{token_id}", method="DELETE")
            .exclude(path="/api/auth/logout").exclude(path="/api/auth/password"))


def errors_are_vmdeck_json(ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> bool:
    if response.status_code < 400:
        return True
    body = response.json()
    assert set(body) == {"error", "kind", "detail", "field"}, body
    assert isinstance(body["error"], str) and isinstance(body["detail"], str) and "\n" not in body["detail"]
    assert response.status_code != 500, f"internal error: {body}"
    if response.status_code >= 500:
        assert body["error"] == _ENVIRONMENT_5XX.get(response.status_code), (response.status_code, body)
    return True


def _no_image_build(case: schemathesis.Case) -> schemathesis.Case:
    # The default template boots the tiny guest image, which a fresh data dir would first have to
    # build (minutes): fuzz creation with a disk-based template instead.
    if isinstance(case.body, dict) and case.body.get("template", "tiny") == "tiny":
        case.body["template"] = "q35-virtio"
    return case


def test_api_never_crashes_and_errors_are_json(api_schema: schemathesis.BaseSchema,
                                                fuzz_app: tuple[FastAPI, str]) -> None:
    _app, token = fuzz_app
    tried = []
    # One Hypothesis run per operation (schemathesis' pytest plugin predates this pytest's node API).
    for result in api_schema.get_all_operations():
        operation = result.ok()

        strategy = operation.as_strategy()
        if operation.method.upper() == "POST" and operation.path == "/api/vms":
            strategy = strategy.map(_no_image_build)

        @given(case=strategy)
        @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=[errors_are_vmdeck_json])

        run()
        tried.append(operation.label)
    assert len(tried) >= 30, tried

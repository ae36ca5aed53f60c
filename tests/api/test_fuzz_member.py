"""Schemathesis as a non-administrator: a manager of one project, with a project token, fuzzes every
operation. No answer is a crash (5xx other than the test driver's honest 502/503), and no answer
carries the name of another project's VM, ISO or project."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CheckContext
from tenancy_helpers import PASSWORD, add_user
from test_fuzz_openapi import _no_image_build, errors_are_vmdeck_json
from webapi_helpers import AppFactory, sign_in

SECRETS = ("hidden-beta-vm-7f3a", "hidden-beta-project", "hidden-beta-disc.iso")
ISO = bytes(32769) + b"CD001" + bytes(2048)


@pytest.fixture
def member_app(make_app: AppFactory) -> Iterator[tuple[FastAPI, str]]:
    app = make_app(events=False)
    with TestClient(app) as admin:
        admin.headers["X-CSRF-Token"] = sign_in(admin)
        for project in ("alpha", "hidden-beta-project"):
            assert admin.post("/api/projects", json={"name": project}).status_code == 201
        add_user(admin, "fuzzer", "alpha", "manager")
        add_user(admin, "beta-owner", "hidden-beta-project", "manager")
        for vm, project in (("a1", "alpha"), ("hidden-beta-vm-7f3a", "hidden-beta-project")):
            made = admin.post("/api/vms", json={"name": vm, "template": "q35-virtio", "project": project})
            assert made.status_code == 201, made.text
        beta = TestClient(app)
        beta.headers["X-CSRF-Token"] = sign_in(beta, "beta-owner", PASSWORD)
        assert beta.put("/api/isos/hidden-beta-disc.iso", content=ISO).status_code == 201
        fuzzer = TestClient(app)
        fuzzer.headers["X-CSRF-Token"] = sign_in(fuzzer, "fuzzer", PASSWORD)
        token = fuzzer.post("/api/auth/tokens", json={"name": "fuzz"}).json()["token"]
    yield app, token


def no_foreign_names(ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> bool:
    sent = repr(case.path_parameters) + repr(case.query) + repr(case.body)
    for secret in SECRETS:
        if secret not in sent:  # an answer may echo what the caller itself sent
            assert secret not in response.text, (case.method, case.path, response.status_code, response.text[:300])
    return True


def test_a_member_never_crashes_the_api_nor_learns_other_projects(member_app: tuple[FastAPI, str]) -> None:
    app, token = member_app
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, headers={"Authorization": f"Bearer {token}"})
    schema = (schema.exclude(path="/api/auth/tokens/{token_id}", method="DELETE")
              .exclude(path="/api/auth/logout").exclude(path="/api/auth/password"))
    tried = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy()
        if operation.method.upper() == "POST" and operation.path == "/api/vms":
            strategy = strategy.map(_no_image_build)

        @given(case=strategy)
        @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                                   checks=[errors_are_vmdeck_json, no_foreign_names])

        run()
        tried.append(operation.label)
    assert len(tried) >= 30, tried
    # And directly: the listings a member reads name nothing of the other project.
    with TestClient(app) as member:
        member.headers["Authorization"] = f"Bearer {token}"
        for path in ("/api/vms", "/api/isos", "/api/projects", "/api/audit", "/api/projects/alpha"):
            reply = member.get(path)
            assert reply.status_code == 200 and not any(s in reply.text for s in SECRETS), (path, reply.text)

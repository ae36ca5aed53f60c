"""Property-based fuzzing of the REST API from its own OpenAPI document (schemathesis), in-process
on libvirt's test driver: no response is a crash (500), and every error is a JSON body of vmdeck's shape.

The test driver cannot hot-plug devices and its VMs have no guest agent, so an honest 503
("host cannot do that") or 502 ("guest did not answer") may come back; those must carry the
matching error kind. A bare 500 is always a failure.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis.checks import CheckContext
from webapi_helpers import AppFactory

_ENVIRONMENT_5XX = {502: "guest_unavailable", 503: "host_unavailable"}
KNOWN_VMS = ("busy", "fuzz-vm")


@pytest.fixture
def fuzz_app(make_app: AppFactory) -> Iterator[tuple[FastAPI, str]]:
    app = make_app(events=False)
    with TestClient(app) as client:
        from webapi_helpers import sign_in

        client.headers["X-CSRF-Token"] = sign_in(client)
        token = client.post("/api/auth/tokens", json={"name": "fuzz"}).json()["token"]
        # A VM with disks, a drive and NICs besides the driver's "busy", so that calls naming a VM
        # reach the code behind the lookup instead of stopping at 404.
        made = client.post("/api/vms", json={"name": KNOWN_VMS[1], "template": "q35-virtio"})
        assert made.status_code == 201, made.text
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


def _known_name(pair: tuple[schemathesis.Case, str | None]) -> schemathesis.Case:
    case, name = pair
    if name is not None and case.path_parameters and "name" in case.path_parameters:
        case.path_parameters["name"] = name
    return case


def _fuzz_one(label: str, strategy: object, examples: int, run_seed: int, token: str, statuses: Counter[int],
              server_errors: Counter[str]) -> None:
    # Half of the calls name a VM that exists.
    biased = st.tuples(strategy, st.sampled_from([None, None, *KNOWN_VMS])).map(_known_name)  # type: ignore[arg-type]

    @seed(run_seed)
    @given(case=biased)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            server_errors[f"{label} {response.status_code} {response.json().get('error')}"] += 1
        case.validate_response(response, checks=[errors_are_vmdeck_json])

    run()


# `make fuzz` sets VMDECK_FUZZ_CALLS (10,000) and VMDECK_FUZZ_REPORT (a JSON summary); the suite's
# run is CI-sized: a dozen examples per operation.
_CALLS = int(os.environ.get("VMDECK_FUZZ_CALLS", "0"))
_REPORT = os.environ.get("VMDECK_FUZZ_REPORT")


def test_api_never_crashes_and_errors_are_json(api_schema: schemathesis.BaseSchema,
                                                fuzz_app: tuple[FastAPI, str]) -> None:
    _app, token = fuzz_app
    operations = [result.ok() for result in api_schema.get_all_operations()]
    statuses: Counter[int] = Counter()
    server_errors: Counter[str] = Counter()
    per_round = max(12, _CALLS // max(1, len(operations)) // 4)
    rounds = 0
    # One Hypothesis run per operation (schemathesis' pytest plugin predates this pytest's node API);
    # the long run goes round again with new seeds until it has made its number of calls (an operation
    # with few distinct inputs runs out of new examples early).
    while True:
        for operation in operations:
            strategy = operation.as_strategy()
            if operation.method.upper() == "POST" and operation.path == "/api/vms":
                strategy = strategy.map(_no_image_build)

            _fuzz_one(operation.label, strategy, per_round, rounds * 1000 + operations.index(operation), token,
                      statuses, server_errors)
        rounds += 1
        if sum(statuses.values()) >= _CALLS:
            break
    calls = sum(statuses.values())
    summary = {"calls": calls, "operations": len(operations), "rounds": rounds,
               "statuses": dict(sorted(statuses.items())), "server_errors": dict(server_errors)}
    print(f"\nfuzz: {json.dumps(summary)}")
    if _REPORT:
        Path(_REPORT).write_text(json.dumps(summary, indent=2) + "\n")
    assert len(operations) >= 30, [op.label for op in operations]
    assert statuses[500] == 0, server_errors

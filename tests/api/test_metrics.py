"""GET /metrics, the live figures and history on libvirt's test driver: who sees which VMs, the "metrics"
token scope, and that Prometheus' own checker (promtool, Debian's prometheus package) accepts the text."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tenancy_helpers import make_world
from webapi_helpers import AppFactory, sign_in


@pytest.fixture
def app(make_app: AppFactory) -> FastAPI:
    return make_app(metrics_interval=0.3, metrics_detail_interval=0.3)


@pytest.fixture
def admin(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        client.headers["X-CSRF-Token"] = sign_in(client)
        yield client


def _scrape(client: TestClient, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = client.get("/metrics", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return reply.text


def test_admin_scrape_has_every_vm_and_the_host_and_promtool_accepts_it(admin: TestClient) -> None:
    text = _scrape(admin)
    assert 'libvirt_domain_info_vstate{domain="busy",host="local",project=""} 1.0' in text
    assert 'libvirt_domain_info_virtual_cpus{domain="busy",host="local",project=""} 1.0' in text
    assert 'libvirt_domain_info_maximum_memory_bytes{domain="busy",host="local",project=""} 2.68435456e+08' in text
    assert "libvirt_domain_info_cpu_time_seconds_total{" in text
    assert 'vmdeck_host_up{host="local"} 1.0' in text
    assert 'vmdeck_host_vcpus_allocated{host="local"} 1.0' in text
    assert 'vmdeck_storage_pool_allocation_ratio{host="local",pool="vmdeck"} 0.0' in text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_signed_out_scrape_is_refused(app: FastAPI) -> None:
    with TestClient(app) as anon:
        reply = anon.get("/metrics")
        assert reply.status_code == 401


def test_project_members_and_metrics_tokens_see_their_own_vms_only(app: FastAPI, admin: TestClient) -> None:
    world = make_world(app, admin, quota={"instances": 5})
    viewer = world.client("alpha-viewer")
    reply = viewer.post("/api/auth/tokens", json={"name": "prometheus", "scopes": ["metrics"]})
    assert reply.status_code == 201, reply.text
    token = reply.json()["token"]
    assert reply.json()["scopes"] == ["metrics"] and reply.json()["project"] == "alpha"
    deadline = time.monotonic() + 30
    while 'domain="a1"' not in (text := _scrape(TestClient(app), token)):  # the next sample has the new VMs
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    assert 'libvirt_domain_info_vstate{domain="a1",host="local",project="alpha"}' in text
    for foreign in ('"b1"', '"busy"', "beta", "vmdeck_host_up"):
        assert foreign not in text
    assert 'vmdeck_project_quota_limit{project="alpha",resource="instances"} 5.0' in text
    # The scope holds: the same token lists no VMs and creates nothing.
    bearer = {"Authorization": f"Bearer {token}"}
    plain = TestClient(app)
    assert plain.get("/api/vms", headers=bearer).status_code == 403
    assert plain.get("/api/vms/a1/history", headers=bearer).status_code == 200
    assert plain.get("/api/vms/b1/history", headers=bearer).status_code == 404
    assert plain.get("/api/host/history", headers=bearer).status_code == 403
    live = plain.get("/api/metrics/vms", headers=bearer).json()
    assert [vm["name"] for vm in live["vms"]] == ["a1"] and "host" not in live
    # The admin sees all three and the host.
    everything = _scrape(admin)
    for name in ("a1", "b1", "busy"):
        assert f'domain="{name}"' in everything


def test_a_bad_scope_is_refused(admin: TestClient) -> None:
    reply = admin.post("/api/auth/tokens", json={"name": "x", "scopes": ["everything"]})
    assert reply.status_code == 422, reply.text


def test_history_api_answers_the_sampled_points(admin: TestClient) -> None:
    deadline = time.monotonic() + 30
    while not (points := admin.get("/api/vms/busy/history", params={"range": "1h"}).json()["points"]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    answer = admin.get("/api/vms/busy/history", params={"range": "1h"}).json()
    assert answer["step_s"] == 10 and answer["fields"][0] == "t" and "cpu_pct" in answer["fields"]
    assert abs(points[-1][0] - time.time()) < 30
    assert admin.get("/api/host/history", params={"range": "30d"}).json()["step_s"] == 600
    assert admin.get("/api/vms/busy/history", params={"range": "2y"}).status_code == 422
    assert admin.get("/api/vms/nosuch/history").status_code == 404


def _notices_until(client: TestClient, wanted: Callable[[dict[str, str]], bool]) -> list[dict[str, str]]:
    deadline = time.monotonic() + 60
    while True:
        found: list[dict[str, str]] = client.get("/api/metrics/notices").json()
        if any(wanted(n) for n in found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.3)


def test_thresholds_show_as_notices_and_gauges_to_those_who_may_see_them(app: FastAPI, admin: TestClient) -> None:
    # The test driver's CPU time is its clock: its running VMs read 100 % of one host CPU (a 1-vCPU VM: pinned).
    world = make_world(app, admin)
    found = _notices_until(admin, lambda n: n["kind"] == "cpu_pinned" and n["subject"] == "busy")
    assert any(n["subject"] == "busy" and "all 1 vCPU(s) at 100 %" in n["message"] for n in found)
    deadline = time.monotonic() + 30
    while 'domain="a1"' not in (text := _scrape(admin)):  # the sample after the create
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert 'vmdeck_domain_cpu_pinned{domain="busy",host="local",project=""} 1.0' in text
    assert 'vmdeck_domain_cpu_pinned{domain="a1",host="local",project="alpha"} 0.0' in text  # shut off
    assert world.client("alpha-viewer").get("/api/metrics/notices").json() == []  # busy is no project's
    # 17 running vCPUs on the test host's 4 CPUs x ratio 4: over the limit.
    reply = admin.post("/api/vms", json={"name": "wide", "template": "q35-virtio", "vcpus": 17, "disk_gib": 1,
                                         "project": "alpha"})
    assert reply.status_code == 201, reply.text
    assert admin.post("/api/vms/wide/start").status_code == 200
    _notices_until(admin, lambda n: n["kind"] == "host_vcpu_ratio")
    assert 'vmdeck_host_vcpu_overcommitted{host="local"} 1.0' in _scrape(admin)
    assert not any(n["kind"] == "host_vcpu_ratio" for n in world.client("alpha-viewer").get(
        "/api/metrics/notices").json())


def test_a_vm_made_again_under_an_old_name_does_not_inherit_its_history(admin: TestClient, tmp_path: Path) -> None:
    history = tmp_path / "web" / "history"  # beside the test app's database

    def made_and_started() -> str:
        assert admin.post("/api/vms", json={"name": "again", "template": "q35-virtio", "disk_gib": 1}).status_code == 201
        assert admin.post("/api/vms/again/start").status_code == 200
        return str(admin.get("/api/vms/again").json()["uuid"])

    def file_of(uuid: str) -> Path:
        deadline = time.monotonic() + 30
        while not (history / f"vm-{uuid}.hist").exists() or not admin.get("/api/vms/again/history").json()["points"]:
            assert time.monotonic() < deadline, sorted(p.name for p in history.iterdir())
            time.sleep(0.2)
        return history / f"vm-{uuid}.hist"

    first = made_and_started()
    old = file_of(first)
    assert admin.delete("/api/vms/again", params={"force": "true"}).status_code == 200
    second = made_and_started()
    assert second != first
    new = file_of(second)
    assert old.exists() and new != old  # the old history stays apart (pruned 30 days after), never shown for the new VM

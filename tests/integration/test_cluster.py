"""Several hosts under one vmdeck: three libvirtds in namespaces of their own (nshosts.py).

The registry of each test is its own database (VMDECK_DB, tests/conftest.py) holding the three
namespace hosts h0, h1, h2 and not `local`, so nothing here places or drains the shared host's VMs.
Every host reports the machine's own memory; a reserve sized from it leaves each host room for a
few tiny guests, so placement decisions are real ones at a small scale.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from itest_support import PREFIX, wait_for
from nshosts import NamespaceHost, start_hosts, stop_hosts

from vmdeck.cluster.registry import HostEntry, Registry
from vmdeck.host.connection import Host
from vmdeck.vm.agent import guest_exec

VM_MIB = 96
ROOM = {"h0": 5 * VM_MIB, "h1": 4 * VM_MIB, "h2": 3 * VM_MIB}  # memory each host may give to VMs
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def ns_hosts(host: Host) -> Iterator[dict[str, NamespaceHost]]:
    made = start_hosts(host, 3)
    try:
        yield {f"h{i}": ns for i, ns in enumerate(made)}
    finally:
        stop_hosts(made)


@pytest.fixture
def registry(ns_hosts: dict[str, NamespaceHost], host: Host) -> Registry:
    """This test's registry: h0, h1, h2 with reserves that leave ROOM[name] MiB for VMs."""
    total_mib = host.conn.info()[1]
    reg = Registry()
    reg.remove("local")
    for name, ns in ns_hosts.items():
        reg.add(HostEntry(name, ns.uri, vcpu_ratio=8, reserve_mib=total_mib - ROOM[name]))
    return reg


def _where(cli: Cli) -> dict[str, str]:
    """VM -> host from `vmdeck list --json`."""
    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {vm["name"]: vm["host"] for vm in json.loads(listed.stdout)}


def _guest(ns: NamespaceHost, vm: str, command: str) -> str:
    with ns.connect() as opened:
        result = guest_exec(opened.lookup(vm), ["/bin/sh", "-c", command], timeout=60)
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode().strip()


def _boot_id(ns: NamespaceHost, vm: str) -> str:
    # The agent starts a little after the VM: wait for it on a loaded machine (minutes, not seconds).
    return str(wait_for(lambda: _guest(ns, vm, "cat /proc/sys/kernel/random/boot_id"), timeout=600))


@pytest.fixture(scope="module")
def placed(ns_hosts: dict[str, NamespaceHost]) -> dict[str, str]:
    """Names of the six VMs the placement test creates (filled by it), shared by the later tests."""
    return {}


def test_placement_spreads_by_free_memory_and_refuses_with_reasons(registry: Registry, placed: dict[str, str],
                                                                    cli: Cli) -> None:
    for index in range(6):
        name = f"{PREFIX}place{index}-{uuid.uuid4().hex[:4]}"
        made = cli("create", name, "--memory", str(VM_MIB), "--accel", "tcg", "--start")
        assert made.returncode == 0, made.stderr
        placed[name] = made.stdout.strip().rsplit(" ", 1)[-1]
    # Most free memory first (ties: fewest vCPUs): 5/4/3 VMs of room fill as h0 h1 h0 h2 h1 h0.
    assert list(placed.values()) == ["h0", "h1", "h0", "h2", "h1", "h0"]
    assert {vm: host for vm, host in _where(cli).items() if vm in placed} == placed
    hosts = json.loads(cli("host", "list", "--json").stdout)
    assert {h["name"]: (h["vms_running"], h["memory_allocated_mib"]) for h in hosts} == {
        "h0": (3, 3 * VM_MIB), "h1": (2, 2 * VM_MIB), "h2": (1, VM_MIB)}
    assert all(h["memory_free_mib"] == h["memory_mib"] - h["reserve_mib"] - h["memory_allocated_mib"] for h in hosts)
    # A VM that fits nowhere is refused, and the refusal says why for each host; nothing is created.
    # (This machine is itself a VM whose balloon moves its MemTotal by a few hundred MiB now and then:
    # "fits nowhere" is asked with a margin, and the free memory is read from the message.)
    too_big = 2 * VM_MIB + 1024
    big = cli("create", f"{PREFIX}toobig", "--memory", str(too_big), "--accel", "tcg")
    assert big.returncode == 4, big.stderr
    for name in ROOM:
        assert re.search(rf"{name}: needs {too_big} MiB, \d+ MiB free \(\d+ total, {ROOM[name] - 2 * VM_MIB} "
                         r"allocated", big.stderr), big.stderr
    assert f"{PREFIX}toobig" not in _where(cli)
    # An explicit host that is draining is refused too, with that reason.
    registry.update("h2", draining=True)
    refused = cli("create", f"{PREFIX}ondrained", "--memory", str(VM_MIB), "--host", "h2")
    assert refused.returncode == 4 and "h2: draining" in refused.stderr, refused.stderr


def test_list_answers_without_a_dead_host_and_recovers(registry: Registry, ns_hosts: dict[str, NamespaceHost],
                                                       placed: dict[str, str], cli: Cli) -> None:
    assert placed, "needs the VMs of the placement test"
    ns_hosts["h2"].kill()
    try:
        # h2 refuses at once; the deadline is for h0 and h1, which answer slowly beside six TCG guests.
        listed = cli("list", "--deadline", "30")
        assert listed.returncode == 0, listed.stderr
        shown = {line.split()[0]: line.split()[-1] for line in listed.stdout.splitlines()[1:] if line.strip()
                 and line.split()[0].startswith(PREFIX)}
        assert shown == {vm: h for vm, h in placed.items() if h != "h2"}
        assert "host h2 unreachable" in listed.stdout and "Connection refused" in listed.stdout
        down = {h["name"]: h for h in json.loads(cli("host", "list", "--json", "--deadline", "30").stdout)}
        assert not down["h2"]["reachable"] and down["h0"]["reachable"] and down["h1"]["reachable"]
        # A host that accepts connections and never answers (a hung libvirtd) costs one deadline, no more.
        ns_hosts["h1"].pause()
        try:
            frozen = cli("list", "--deadline", "10")
        finally:
            ns_hosts["h1"].resume()
        assert frozen.returncode == 0, frozen.stderr
        assert "host h1 unreachable: host h1 did not answer within 10 s" in frozen.stdout
        assert all(vm in frozen.stdout for vm, h in placed.items() if h == "h0")
    finally:
        ns_hosts["h2"].start()
    # libvirtd came back (its QEMUs never stopped): the list is whole again.
    assert {vm: h for vm, h in _where(cli).items() if vm in placed} == placed


def test_drain_moves_every_vm_with_the_guests_running(registry: Registry, ns_hosts: dict[str, NamespaceHost],
                                                      placed: dict[str, str], cli: Cli) -> None:
    on_h0 = [vm for vm, h in placed.items() if h == "h0"]
    assert len(on_h0) == 3
    boot_ids = {vm: _boot_id(ns_hosts["h0"], vm) for vm in on_h0}
    # A shut-off VM on h0 too: it moves offline (definition and disk), after the running ones.
    stopped = f"{PREFIX}stopped-{uuid.uuid4().hex[:4]}"
    made = cli("create", stopped, "--memory", str(VM_MIB), "--accel", "tcg", "--host", "h0")
    assert made.returncode == 0, made.stderr
    drained = cli("host", "drain", "h0", timeout=900)
    assert drained.returncode == 0, drained.stderr
    print(drained.stdout, drained.stderr)
    where = _where(cli)
    assert where[stopped] in ("h1", "h2")
    assert f"[4/4] {stopped}: moving (offline) to {where[stopped]}" in drained.stderr
    shown_stopped = json.loads(cli("show", stopped, "--json").stdout)
    assert shown_stopped["state"] == "shut off" and shown_stopped["last_migration"]["kind"] == "offline"
    assert all(where[vm] in ("h1", "h2") for vm in on_h0), where
    for vm in on_h0:
        placed[vm] = where[vm]
        # The same guests, not rebooted ones (an agent may take a moment to answer after the move).
        assert _boot_id(ns_hosts[where[vm]], vm) == boot_ids[vm]
        record = json.loads(cli("show", vm, "--json").stdout)["last_migration"]
        assert record["outcome"] == "completed" and record["to"] == ns_hosts[where[vm]].uri
        assert record["downtime_ms"] >= 0 and record["total_ms"] > 0
    assert "[1/4]" in drained.stderr and "moved to" in drained.stderr
    hosts = {h["name"]: h for h in json.loads(cli("host", "list", "--json").stdout)}
    assert hosts["h0"]["draining"] and hosts["h0"]["vms_running"] == 0
    # Nothing new lands on a draining host; undrain takes it back.
    assert cli("host", "undrain", "h0").returncode == 0
    assert not registry.get("h0").draining


def test_migration_timeout_aborts_and_the_vm_keeps_running(registry: Registry, ns_hosts: dict[str, NamespaceHost],
                                                           placed: dict[str, str], cli: Cli) -> None:
    vm, source = next((vm, h) for vm, h in placed.items() if h in ("h1", "h2"))
    dest = "h2" if source == "h1" else "h1"
    boot_id = _boot_id(ns_hosts[source], vm)
    # The guest dirties memory (a 4 MiB tmpfs file rewritten in a loop: small, so the 96 MiB guest keeps
    # room for its agent) faster than the 1 MiB/s link can copy.
    _guest(ns_hosts[source], vm, "(while :; do dd if=/dev/urandom of=/tmp/dirty bs=64k count=64 2>/dev/null; "
                                 "done) >/dev/null 2>&1 &")
    moved = cli("migrate", vm, "--to", dest, "--timeout", "1", "--bandwidth", "1", timeout=600)
    assert moved.returncode == 7, moved.stderr
    assert "did not finish within 1 s and was cancelled" in moved.stderr
    assert _where(cli)[vm] == source
    # The same guest still runs there (its agent may take a moment to answer again under the load).
    assert _boot_id(ns_hosts[source], vm) == boot_id
    with ns_hosts[dest].connect() as other:
        assert not other.exists(vm)
    shown = cli("show", vm)
    assert "last migration: aborted" in shown.stdout, shown.stdout


def test_api_migrates_with_progress_on_the_event_stream(registry: Registry, ns_hosts: dict[str, NamespaceHost],
                                                        placed: dict[str, str]) -> None:
    """The REST API on the same registry: POST .../migrate moves a VM live, progress arrives as events."""
    from fastapi.testclient import TestClient

    from vmdeck.api import Settings, create_app
    from vmdeck.paths import database_path

    # The last VM on h1/h2 (the timeout test's guest, the first one, still dirties its memory).
    vm, source = [(vm, h) for vm, h in placed.items() if h in ("h1", "h2")][-1]
    dest = "h2" if source == "h1" else "h1"
    boot_id = _boot_id(ns_hosts[source], vm)
    app = create_app(Settings(db_path=database_path(), admin_password="cluster-test-pw",
                              allowed_hosts=("localhost", "127.0.0.1", "::1", "testserver")))
    with TestClient(app) as client:
        reply = client.post("/api/auth/login", json={"username": "admin", "password": "cluster-test-pw"})
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        listed = {v["name"]: v["host"] for v in client.get("/api/vms").json()}
        assert listed[vm] == source
        lines: list[str] = []
        with client.websocket_connect("/api/events") as ws:
            assert ws.receive_json()["type"] == "hello"
            result: dict[str, object] = {}
            mover = threading.Thread(target=lambda: result.update(
                reply=client.post(f"/api/vms/{vm}/migrate", json={"to": dest, "timeout": 600})))
            mover.start()
            while not any(line.startswith(("done:", "failed:")) for line in lines):
                message = ws.receive_json()
                if message["type"] == "migration" and message["vm"] == vm:
                    lines.append(message["line"])
            mover.join(600)
        answer = result["reply"]
        assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
        assert any(line.startswith("migrating:") for line in lines), lines
        assert {v["name"]: v["host"] for v in client.get("/api/vms").json()}[vm] == dest
        record = client.get(f"/api/vms/{vm}").json()["last_migration"]
        assert record["outcome"] == "completed" and record["to"] == ns_hosts[dest].uri
    assert _boot_id(ns_hosts[dest], vm) == boot_id  # the same guest (its agent may take a moment after the move)


def test_quota_counts_every_host_and_a_hung_one_from_its_last_count(registry: Registry,
                                                                    ns_hosts: dict[str, NamespaceHost],
                                                                    cli: Cli) -> None:
    """What the test driver cannot show: a real libvirtd counted over qemu+tcp (metadata, remote volumes),
    then hung (SIGSTOP: it accepts connections and never answers) while a quota is checked. Its VMs still
    count, from the database, and the check ends after one deadline. No guest is booted: shut-off VMs count."""
    from vmdeck.cluster.fleet import Fleet
    from vmdeck.paths import database_path
    from vmdeck.store.db import open_database
    from vmdeck.store.quota import Demand, QuotaExceeded, reserve, usage_report

    # Room on h1 and h2 whatever the earlier tests left running there: this test is about quotas.
    for host in ("h1", "h2"):
        registry.update(host, reserve_mib=0)
    project = f"quota-{uuid.uuid4().hex[:6]}"
    assert cli("project", "create", project, "--instances", "2").returncode == 0
    made = {"h1": f"{PREFIX}qa-{uuid.uuid4().hex[:4]}", "h2": f"{PREFIX}qb-{uuid.uuid4().hex[:4]}"}
    for host, vm in made.items():
        created = cli("create", vm, "--memory", str(VM_MIB), "--accel", "tcg", "--project", project, "--host", host)
        assert created.returncode == 0, created.stderr
    try:
        third = cli("create", f"{PREFIX}qc", "--memory", str(VM_MIB), "--accel", "tcg", "--project", project,
                    "--host", "h0")
        assert third.returncode == 4 and "instances limit 2, in use 2" in third.stderr, third.stderr
        db = open_database(database_path())
        # Deadlines (5 + 10 s) long enough for a loaded machine's live hosts; the frozen one costs each.
        with Fleet(connect_timeout=5, call_timeout=10) as fleet:
            live = usage_report(db, fleet, project)
            assert {h: row["vms"] for h, row in live["hosts"].items() if row["vms"]} == {h: [vm] for h, vm in made.items()}
            assert live["quota"]["memory_mib"]["used"] == 2 * VM_MIB and live["quota"]["disk_gib"]["used"] > 0
            ns_hosts["h2"].pause()
            try:
                began = time.monotonic()
                kept = usage_report(db, fleet, project)
                with pytest.raises(QuotaExceeded, match="instances limit 2, in use 2"), \
                        reserve(db, fleet, project, Demand(instances=1), "vm:never"):
                    pass
                took = time.monotonic() - began
            finally:
                ns_hosts["h2"].resume()
        assert kept["hosts"]["h2"]["counted"] == "kept" and kept["hosts"]["h2"]["vms"] == [made["h2"]]
        assert "did not answer within 15 s" in kept["hosts"]["h2"]["reason"]
        assert kept["quota"] == live["quota"]
        assert took < 2 * 15 + 30, took  # two checks, one deadline (5 + 10 s) each, and slack for a loaded machine
    finally:
        for vm in made.values():
            cli("delete", vm, "--force")

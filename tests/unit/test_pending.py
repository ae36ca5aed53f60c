"""Placement claims: a create's room on a host is held from the decision until it ends, seen by every
process on the same database, and a claim whose process died no longer counts once its lease lapses.

Hosts are libvirt's test driver (each `test://<node.xml>` a fake host of its own): 8192 MiB with a
256 MiB VM running; a reserve of 7236 MiB leaves room for one 512 MiB VM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.testdriver import fake_host_uri

from pg_support import both_backends, pg_server, pg_url  # noqa: F401 (fixtures)
from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.pending import Claim, PlacementBook
from vmdeck.cluster.place import room_for
from vmdeck.cluster.placement import Capacity, NoRoom, rejection, with_pending
from vmdeck.cluster.registry import HostEntry, Registry
from vmdeck.errors import Conflict

_HOLD = """
import json, sys
from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.place import room_for
from vmdeck.cluster.registry import HostEntry
entries = [HostEntry(**e) for e in json.loads(sys.argv[1])]
with Fleet(entries) as fleet, room_for(fleet, "theirs", 1, 512) as entry:
    print(entry.name, flush=True)
    sys.stdin.read()
"""


@pytest.fixture(autouse=True)
def _database(backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test on SQLite (the session's file) and on PostgreSQL ($VMDECK_DB names the database)."""
    if backend == "postgresql":
        monkeypatch.setenv("VMDECK_DB", request.getfixturevalue("pg_url"))


def _book(tmp_path: Path, backend: str) -> PlacementBook:
    return PlacementBook(tmp_path / "db.sqlite" if backend == "sqlite" else None)


def _entries(tmp_path: Path, names: str = "a") -> list[HostEntry]:
    return [HostEntry(n, fake_host_uri(tmp_path, n), vcpu_ratio=2, reserve_mib=7236) for n in names]


def test_pending_claims_count_until_their_vm_runs() -> None:
    cap = Capacity("a", reachable=True, pcpus=4, memory_mib=8192, reserve_mib=7236, memory_allocated_mib=256,
                   vcpus_allocated=1, running=frozenset({"busy"}))
    counted = with_pending([cap], [("a", "new", 2, 512), ("a", "busy", 1, 256), ("elsewhere", "x", 1, 64)])[0]
    # "busy" runs already (libvirt counts it): its claim is not counted twice; another host's claim is not ours.
    assert (counted.memory_allocated_mib, counted.vcpus_allocated, counted.pending_mib) == (768, 3, 512)
    assert rejection(counted, 1, 512) == ("needs 512 MiB, 188 MiB free (8192 total, 768 allocated, 512 of it by "
                                          "creates in progress, 7236 reserved)")


def test_a_claim_holds_the_room_until_the_body_ends(tmp_path: Path) -> None:
    entries = _entries(tmp_path, "ab")
    with Fleet(entries) as fleet:
        with room_for(fleet, "one", 1, 512) as first, room_for(fleet, "two", 1, 512) as second:
            assert {first.name, second.name} == {"a", "b"}
            with pytest.raises(NoRoom) as refused, room_for(fleet, "three", 1, 512):
                pass
            assert "a: needs 512 MiB, 188 MiB free" in str(refused.value)
            # The same new name twice at once: the second is told at placement, not at libvirt's define.
            with pytest.raises(Conflict, match="'one' is being created right now"), \
                    room_for(fleet, "one", 1, 64, new=True):
                pass
        assert PlacementBook(Registry().location).claims() == []
        with room_for(fleet, "three", 1, 512):
            pass


def test_another_process_claim_counts_while_it_lives(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    src = Path(__file__).resolve().parents[2] / "src"
    # A short lease, so the dead process's claim lapses within the test.
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "VMDECK_CLAIM_LEASE_S": "3"}
    child = subprocess.Popen([sys.executable, "-c", _HOLD, json.dumps([e.__dict__ for e in entries])],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "a"
        with Fleet(entries) as fleet:
            with pytest.raises(NoRoom, match="512 of it by creates in progress"), room_for(fleet, "mine", 1, 512):
                pass
            time.sleep(4)  # longer than its lease: it renews it, so its claim still counts
            with pytest.raises(NoRoom), room_for(fleet, "mine", 1, 512):
                pass
            # It dies mid-create (SIGKILL: no release): its claim no longer counts once the lease lapses.
            child.kill()
            child.wait(30)
            deadline = time.monotonic() + 60
            while PlacementBook(Registry().location).claims() and time.monotonic() < deadline:
                time.sleep(0.2)
            with room_for(fleet, "mine", 1, 512) as entry:
                assert entry.name == "a"
    finally:
        child.kill()
        child.wait(30)


def test_a_claim_released_after_a_count_began_still_counts_for_it(tmp_path: Path, backend: str) -> None:
    # The hosts are asked before the decision's lock is taken: a create that ended (its VM now running)
    # while they were asked must still count, since the capacity read may have missed its VM.
    book = _book(tmp_path, backend)
    seen = book.seen()
    with book.hold(book.seen(), lambda claims: Claim("a", "quick", 1, 512)):
        pass
    assert book.claims() == []
    counted: list[list[Claim]] = []

    def note(claims: list[Claim]) -> Claim:
        counted.append(claims)
        return Claim("a", "next", 1, 64)

    with book.hold(seen, note):
        pass
    with book.hold(book.seen(), note):
        pass
    assert counted == [[Claim("a", "quick", 1, 512)], []]


def test_a_failed_create_releases_its_claim_at_once(tmp_path: Path, backend: str) -> None:
    book = _book(tmp_path, backend)
    seen = book.seen()
    with pytest.raises(RuntimeError), book.hold(seen, lambda claims: Claim("a", "failed", 1, 512)):
        raise RuntimeError("define failed")
    with book.hold(seen, lambda claims: Claim("a", claims[0].vm if claims else "none", 1, 1)) as claim:
        assert claim.vm == "none"  # no VM was made: nothing left to count

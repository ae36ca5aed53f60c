"""Placement claims: a create's room on a host is held from the decision until it ends, seen by every
process on the same database, and a claim whose process died no longer counts.

Hosts are libvirt's test driver (each `test://<node.xml>` a fake host of its own): 8192 MiB with a
256 MiB VM running; a reserve of 7236 MiB leaves room for one 512 MiB VM.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.testdriver import fake_host_uri

from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.pending import STALE_S, Claim, PlacementBook
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
        assert PlacementBook(Registry().path).claims() == []
        with room_for(fleet, "three", 1, 512):
            pass


def test_another_process_claim_counts_while_it_lives(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen([sys.executable, "-c", _HOLD, json.dumps([e.__dict__ for e in entries])],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "a"
        with Fleet(entries) as fleet:
            with pytest.raises(NoRoom, match="512 of it by creates in progress"), room_for(fleet, "mine", 1, 512):
                pass
            # It dies mid-create (SIGKILL: no release): its claim no longer counts.
            child.kill()
            child.wait(30)
            with room_for(fleet, "mine", 1, 512) as entry:
                assert entry.name == "a"
    finally:
        child.kill()
        child.wait(30)


def test_old_claims_expire(tmp_path: Path) -> None:
    book = PlacementBook(tmp_path / "db.sqlite")
    with book.deciding() as decision:
        decision.hold(Claim("a", "old", 1, 512))
        decision.hold(Claim("a", "new", 1, 512))
    with sqlite3.connect(book.path) as conn:
        conn.execute("UPDATE placements SET created_at = ? WHERE vm = 'old'", (time.time() - STALE_S - 1,))
    assert [c.vm for c in book.claims()] == ["new"]

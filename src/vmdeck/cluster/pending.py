"""Placement claims: a create's claim on a host from the placement decision until its VM runs
(core layer, in the control plane's database through vmdeck.store).

libvirt counts a VM's memory and vCPUs only once it runs, and a create takes a while between choosing
a host and starting the VM. Without a claim, two creates at once see the same free memory and both
pick the host that has room for one. So a placement reads the hosts' capacity first (no lock: that
asks every host), then decides in one short exclusive transaction (vmdeck.store.counters: across
`vmdeck serve` processes and the CLI sharing the database) that sees every claim still held, and
every claim released since its capacity read began, and records its own before it commits.

A claim is dropped when its create fails; when the create succeeded it is kept a while as released
(its VM runs: libvirt counts it now, and vmdeck.cluster.placement.with_pending does not count it
twice). A claim whose owner stopped renewing its lease (vmdeck.store.lease: a killed process or
server) no longer counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, delete, insert, or_, select, update

from vmdeck.store import counters
from vmdeck.store.db import Location, Placement, locate, open_database
from vmdeck.store.lease import expiry, forget_dead_here, held, owner

__all__ = ["Claim", "PlacementBook", "RELEASED_KEEP_S"]

COUNTER = "placements"
# A released claim counts only for decisions whose capacity read began before its release, and such a
# read ends within the fleet's deadlines (seconds): after this long nobody can need it.
RELEASED_KEEP_S = 600.0


@dataclass(frozen=True)
class Claim:
    host: str
    vm: str
    vcpus: int
    memory_mib: int


class PlacementBook:
    """The `placements` table of the control plane's database (the host registry's)."""

    def __init__(self, where: str | Path | Location | None = None) -> None:
        self.location = locate(where)
        self._engine: Engine | None = None

    @property
    def path(self) -> Path | None:
        return self.location.path

    def engine(self) -> Engine:
        if self._engine is None:
            bind = open_database(self.location).kw["bind"]
            assert isinstance(bind, Engine)
            self._engine = bind
        return self._engine

    def seen(self) -> int:
        """Where the releases stand: take this before reading the hosts' capacity, hand it to `decide`."""
        return counters.value(self.engine(), COUNTER)

    def decide(self, seen: int, choose: Callable[[list[Claim]], Claim]) -> tuple[int, Claim]:
        """One placement decision: `choose` (no I/O: it runs in the exclusive transaction) gets the claims
        that count for a capacity read taken at `seen`, and returns the claim to hold (or raises)."""
        now = time.time()
        p = Placement
        with counters.exclusive(self.engine(), COUNTER) as conn:
            # A held claim whose lease lapsed, or a released one kept long enough: gone.
            forget_dead_here(conn)
            conn.execute(delete(p).where(p.expires_at < now))
            rows = conn.execute(select(p.host, p.vm, p.vcpus, p.memory_mib)
                                .where(or_(p.released_seq.is_(None), p.released_seq > seen)).order_by(p.id)).all()
            claim = choose([Claim(r.host, r.vm, r.vcpus, r.memory_mib) for r in rows])
            claim_id = conn.execute(insert(p).values(
                host=claim.host, vm=claim.vm, vcpus=claim.vcpus, memory_mib=claim.memory_mib, owner=owner(),
                created_at=now, expires_at=expiry()).returning(p.id)).scalar_one()
        return int(claim_id), claim

    @contextmanager
    def hold(self, seen: int, choose: Callable[[list[Claim]], Claim]) -> Iterator[Claim]:
        """`decide`, then hold the claim (its lease renewed) while the body runs; released when it ends."""
        claim_id, claim = self.decide(seen, choose)
        done = False
        try:
            with held(self.engine()):
                yield claim
            done = True
        finally:
            self.release(claim_id, done=done)

    def release(self, claim_id: int, *, done: bool = False) -> None:
        """The create ended: `done` (its VM is defined and runs) keeps the claim as released for a while,
        else it is deleted."""
        with counters.exclusive(self.engine(), COUNTER) as conn:
            if done:
                seq = counters.bump(conn, COUNTER)
                conn.execute(update(Placement).where(Placement.id == claim_id)
                             .values(released_seq=seq, expires_at=time.time() + RELEASED_KEEP_S))
            else:
                conn.execute(delete(Placement).where(Placement.id == claim_id))

    def claims(self) -> list[Claim]:
        """The claims held now (released ones left out)."""
        return [c for c, released in self._rows() if not released]

    def live_claims(self) -> list[Claim]:
        """The claims that count now, for reports: read without the exclusive transaction (a report does
        not queue behind a placement). No database yet: none."""
        if self.location.path is not None and not self.location.path.exists():
            return []
        return self.claims()

    def _rows(self) -> list[tuple[Claim, bool]]:
        now = time.time()
        p = Placement
        with self.engine().connect() as conn:
            rows = conn.execute(select(p.host, p.vm, p.vcpus, p.memory_mib, p.released_seq)
                                .where(p.expires_at >= now).order_by(p.id)).all()
        return [(Claim(r.host, r.vm, r.vcpus, r.memory_mib), r.released_seq is not None) for r in rows]

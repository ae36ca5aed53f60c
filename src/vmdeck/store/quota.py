"""Project quotas: usage against limits, and reservations that make concurrent creates safe (store layer).

Usage is counted on configured sizes from libvirt (vmdeck.vm.project.project_usage:
shut-off VMs count) on every registered host (vmdeck.cluster.usage: all hosts at once,
under the fleet's deadlines), plus the reservations of creates still in progress.

The hosts are counted first, holding no database lock; then one short exclusive transaction
per project (vmdeck.store.counters: SQLite's BEGIN IMMEDIATE, or the project's counter row
locked FOR UPDATE on PostgreSQL, so servers sharing the database see each other) re-checks the
count against the limits and the reservations held, and inserts the new reservation. A
reservation released after the count began (its VM defined meanwhile) still counts for that
check, unless the count saw the VM. A create releases its reservation when it ends, whether it
succeeded (libvirt then counts the VM) or not; a resize holds its growth the same way while it
runs. A reservation lives by its lease (vmdeck.store.lease): the process or server that holds it
renews it, and one that died stops counting once the lease lapses.

A host that does not answer still counts: each successful count of a project on a host is
kept (`host_usage`, with which projects had VMs there in `hosts_counted`), and a host that
is unreachable counts with its last known use. One never counted for the project makes a
quota check impossible: HostError (503) naming the host, never a silent pass. A create or a
resize adds what it took to its host's kept use, so the kept use is never behind vmdeck's
own changes.

A refusal is 409 (kind "quota_exceeded", exit code 4 in the CLI) and names the quota,
the limit and the current use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.usage import count_everywhere
from vmdeck.errors import Conflict, HostError, NotFound
from vmdeck.host.connection import Host
from vmdeck.store import counters
from vmdeck.store.db import Counter, HostCounted, HostUsage, IsoOwner, Project, Reservation, utcnow
from vmdeck.store.lease import expiry, forget_dead_here, held, owner
from vmdeck.store.tenancy import QUOTA_FIELDS
from vmdeck.vm.project import Usage, project_usage

# Where a project's VMs are counted: the one host of a server without a registry, or every registered host.
Where = Host | Fleet

__all__ = ["Where", "QuotaExceeded", "Demand", "demand_for", "usage_report", "project_vms", "reserve", "locked_change",
           "iso_usage_gib", "remaining", "publish_iso", "locked_project", "check_count",
           "network_room"]

# A reservation released with its VM defined counts for the checks whose count began before the release;
# those end within the fleet's deadlines (seconds): after this long it is deleted.
_RELEASED_KEEP_S = 600.0
# How often a check counts again while a resize is in progress or ended during its count; the last try counts
# such a resize as held (never too little).
_RECOUNTS = 20
# Lapsed and old released reservations are deleted by a release at most this often per process.
_SWEEP_S = 30.0
_swept = -_SWEEP_S
_UNITS = {"instances": "", "vcpus": "", "memory_mib": " MiB", "disk_gib": " GiB", "iso_gib": " GiB",
          "networks": "", "forwards": ""}


class QuotaExceeded(Conflict):
    kind = "quota_exceeded"

    def __init__(self, project: str, quota: str, limit: float, used: float, wanted: float) -> None:
        unit = _UNITS.get(quota, "")
        super().__init__(f"quota exceeded in project {project}: {quota} limit {_num(limit)}{unit}, "
                         f"in use {_num(used)}{unit}, this needs {_num(wanted)}{unit} more")
        self.project, self.quota, self.limit, self.used = project, quota, limit, used


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Demand:
    instances: int = 0
    vcpus: int = 0
    memory_mib: int = 0
    disk_gib: float = 0.0
    iso_gib: float = 0.0


def demand_for(spec: Any) -> Demand:
    """What creating a VM from `spec` (a vmdeck.spec.models.VmSpec) takes: its new volumes, not the user's images."""
    return Demand(instances=1, vcpus=spec.vcpus, memory_mib=spec.memory_mib,
                  disk_gib=sum(d.size_gib or 0 for d in spec.disks if d.source is None))


def _engine(db: sessionmaker[Session]) -> Engine:
    bind = db.kw["bind"]
    assert isinstance(bind, Engine)
    return bind


def _counter(project: str) -> str:
    return f"quota:{project}"


def _insert(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def _project_row(conn: Connection, project: str) -> tuple[int, dict[str, float | None]]:
    columns = [getattr(Project, c) for c in QUOTA_FIELDS.values()]
    row = conn.execute(select(Project.id, *columns).where(Project.name == project)).first()
    if row is None:
        raise NotFound(f"no project named {project!r}")
    return int(row[0]), dict(zip(QUOTA_FIELDS, row[1:], strict=True))


def _locked_project(conn: Connection, project: str) -> tuple[int, dict[str, float | None]]:
    """At the start of a transaction: the project's row, no other quota decision of the project beside this one
    until it ends (SQLite: the database's write lock, BEGIN IMMEDIATE; PostgreSQL: the row, FOR UPDATE)."""
    columns = [getattr(Project, c) for c in QUOTA_FIELDS.values()]
    query = select(Project.id, *columns).where(Project.name == project)
    if conn.dialect.name == "sqlite":
        counters.immediate(conn)
    else:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no project named {project!r}")
    return int(row[0]), dict(zip(QUOTA_FIELDS, row[1:], strict=True))


def locked_project(conn: Connection, project: str) -> tuple[int, dict[str, float | None]]:
    """_locked_project for the stores that count in the database alone (vmdeck.store.forwards, networks)."""
    return _locked_project(conn, project)


def check_count(project: str, quota: str, limit: float | None, used: int, wanted: int = 1) -> None:
    """QuotaExceeded when `wanted` more of a counted quota (networks, forwards) passes its limit."""
    if limit is not None and used + wanted > limit:
        raise QuotaExceeded(project, quota, limit, used, wanted)


def _before_count(conn: Connection, project: str) -> int:
    """Before the hosts are counted: the project's release counter (NotFound for no such project)."""
    row = conn.execute(select(Project.id, Counter.value).outerjoin(Counter, Counter.name == _counter(project))
                       .where(Project.name == project)).first()
    conn.rollback()  # no transaction left open while libvirt is asked
    if row is None:
        raise NotFound(f"no project named {project!r}")
    return int(row[1] or 0)


def iso_usage_gib(conn: Connection, project_id: int) -> float:
    total = conn.scalar(select(func.coalesce(func.sum(IsoOwner.size_bytes), 0)).where(IsoOwner.project_id == project_id))
    return float(total or 0) / 2**30


def _claim_rows(conn: Connection, project_id: int, seen: int | None) -> list[Any]:
    """The project's reservations that count: those held now (lease running), and those released after a
    count that began at counter `seen` (None: none of those). One query: it runs under the project's lock."""
    r = Reservation
    counting: ColumnElement[bool] = (r.released_seq.is_(None)) & (r.expires_at >= time.time())
    if seen is not None:
        counting = or_(counting, r.released_seq > seen)
    return list(conn.execute(select(r.what, r.released_seq, r.instances, r.vcpus, r.memory_mib, r.disk_gib, r.iso_gib)
                             .where(r.project_id == project_id, counting)).all())


def _reserved(conn: Connection, project_id: int, existing: tuple[str, ...], seen: int | None,
              rows: list[Any] | None = None) -> Demand:
    """What the project's reservations hold (_claim_rows); a create whose VM the count saw is not counted twice."""
    total = [0, 0, 0, 0.0, 0.0]
    for what, _released, *amounts in rows if rows is not None else _claim_rows(conn, project_id, seen):
        if what in existing:  # the create got as far as defining the VM: libvirt counts it already
            continue
        total = [a + b for a, b in zip(total, amounts, strict=True)]
    return Demand(*total)  # type: ignore[arg-type]


@dataclass
class _Counted:
    """A project's use summed over the hosts, and each host's share and where it came from."""

    usage: Usage = field(default_factory=Usage)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)  # host -> why its use is not known
    # Live counts to keep: (uri, host, usage, projects with VMs there).
    live: list[tuple[str, str, Usage, frozenset[str]]] = field(default_factory=list)

    def add(self, host: str, usage: Usage, counted: str, **extra: Any) -> None:
        self.usage = Usage(self.usage.instances + usage.instances, self.usage.vcpus + usage.vcpus,
                           self.usage.memory_mib + usage.memory_mib, round(self.usage.disk_gib + usage.disk_gib, 3),
                           tuple(sorted((*self.usage.vms, *usage.vms))))
        self.hosts[host] = {"instances": usage.instances, "vcpus": usage.vcpus, "memory_mib": usage.memory_mib,
                            "disk_gib": usage.disk_gib, "vms": list(usage.vms), "counted": counted, **extra}


def _when(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _keep(conn: Connection, counted: _Counted, project: str) -> None:
    """Store the live counts of `counted` as each host's last known use."""
    now = time.time()
    upsert = _insert(conn)
    for uri, host, usage, projects in counted.live:
        values = {"host": host, "instances": usage.instances, "vcpus": usage.vcpus, "memory_mib": usage.memory_mib,
                  "disk_gib": usage.disk_gib, "vms": json.dumps(list(usage.vms)), "counted_at": now}
        conn.execute(upsert(HostUsage).values(uri=uri, project=project, **values)
                     .on_conflict_do_update(index_elements=["uri", "project"], set_=values))
        seen = {"projects": json.dumps(sorted(projects)), "counted_at": now}
        conn.execute(upsert(HostCounted).values(uri=uri, **seen).on_conflict_do_update(index_elements=["uri"], set_=seen))


def _kept(conn: Connection, uri: str, project: str) -> tuple[Usage, float] | None:
    """The project's use on `uri` at its last count (a project that had no VM there then: none), or None."""
    row = conn.execute(select(HostUsage).where(HostUsage.uri == uri, HostUsage.project == project)).first()
    if row is not None:
        u = row._mapping
        return (Usage(int(u["instances"]), int(u["vcpus"]), int(u["memory_mib"]), float(u["disk_gib"]),
                      tuple(json.loads(u["vms"]))), float(u["counted_at"]))
    seen = conn.execute(select(HostCounted.projects, HostCounted.counted_at).where(HostCounted.uri == uri)).first()
    if seen is not None and project not in json.loads(seen[0]):
        return Usage(), float(seen[1])
    return None


def _count(conn: Connection, where: Where, project: str) -> _Counted:
    """The project's use on every host: libvirt asked with no database lock held (nor a transaction open);
    the live counts kept as each host's last known use."""
    counted = _Counted()
    if isinstance(where, Host):
        counted.add("local", project_usage(where, project), "live")
        return counted
    answers = count_everywhere(where, project)
    for answer in answers:
        entry = answer.entry
        if answer.value is not None:
            counted.live.append((entry.connect_uri, entry.name, answer.value.usage, answer.value.projects))
            counted.add(entry.name, answer.value.usage, "live")
            continue
        kept = _kept(conn, entry.connect_uri, project)
        if kept is None:
            counted.unknown[entry.name] = str(answer.error)
            counted.hosts[entry.name] = {"counted": "unknown", "reason": str(answer.error)}
        else:
            counted.add(entry.name, kept[0], "kept", counted_at=_when(kept[1]), reason=str(answer.error))
    # Outside the decision's lock: the last count of a host is a record, the latest write wins.
    _keep(conn, counted, project)
    conn.commit()
    return counted


def _in_use(conn: Connection, counted: _Counted, project_id: int, seen: int | None, rows: list[Any] | None = None,
            *, iso: bool = True) -> dict[str, float]:
    """Use per quota: the count plus what reservations hold (`rows`: already read). `iso` False: the ISO quota
    is left out (a create does not need it, and it costs a query under the lock)."""
    usage = counted.usage
    held_now = _reserved(conn, project_id, tuple(f"vm:{n}" for n in usage.vms), seen, rows)
    used = {"instances": usage.instances + held_now.instances, "vcpus": usage.vcpus + held_now.vcpus,
            "memory_mib": usage.memory_mib + held_now.memory_mib,
            "disk_gib": round(usage.disk_gib + held_now.disk_gib, 3)}
    if iso:
        used["iso_gib"] = round(iso_usage_gib(conn, project_id) + held_now.iso_gib, 6)
    return used


def _refuse_unknown(project: str, counted: _Counted, limits: dict[str, float | None], demand: Demand) -> None:
    """A host whose share is unknown refuses the check of `demand` when a limit applies."""
    bound = [q for q, wanted in asdict(demand).items() if wanted > 0 and limits.get(q) is not None]
    if counted.unknown and bound:
        host, why = next(iter(counted.unknown.items()))
        raise HostError(f"cannot check the quotas of project {project}: host {host} does not answer ({why}) "
                        f"and its VMs were never counted; retry when it answers, or remove it from the registry")


def _grow_kept(conn: Connection, where: Where, on: Host | None, project: str, demand: Demand, vm: str | None) -> None:
    """Add what a create or resize on host `on` took to that host's kept use (it was counted, live, just before)."""
    if on is None or isinstance(where, Host):
        return
    vms_now = conn.scalar(select(HostUsage.vms).where(HostUsage.uri == on.uri, HostUsage.project == project))
    if vms_now is None:
        return
    vms = json.loads(vms_now)
    if vm is not None and vm in vms:
        return  # a count since the create's own already saw the new VM
    conn.execute(update(HostUsage).where(HostUsage.uri == on.uri, HostUsage.project == project).values(
        instances=HostUsage.instances + demand.instances, vcpus=HostUsage.vcpus + demand.vcpus,
        memory_mib=HostUsage.memory_mib + demand.memory_mib, disk_gib=HostUsage.disk_gib + demand.disk_gib,
        vms=json.dumps(sorted([*vms, vm] if vm is not None else vms))))
    seen = conn.scalar(select(HostCounted.projects).where(HostCounted.uri == on.uri))
    if seen is not None and project not in json.loads(seen):
        conn.execute(update(HostCounted).where(HostCounted.uri == on.uri)
                     .values(projects=json.dumps(sorted([*json.loads(seen), project]))))


def _check(project: str, limits: dict[str, float | None], used: dict[str, float], demand: Demand) -> None:
    for quota, wanted in asdict(demand).items():
        limit = limits.get(quota)
        if quota not in used:
            continue
        if limit is not None and wanted > 0 and used[quota] + wanted > limit + 1e-9:
            raise QuotaExceeded(project, quota, limit, used[quota], wanted)


def usage_report(db: sessionmaker[Session], where: Where, project: str) -> dict[str, Any]:
    """{"quota": {name: {"limit", "used"}}, "vms": [...], "hosts": {host: its share}, "complete": bool} for
    `GET /api/projects/{p}` and `vmdeck project show`. A host's share says how it was counted: "live", "kept"
    (unreachable: its last count, with `counted_at`), or "unknown" (unreachable and never counted: not in
    "used", and "complete" is false)."""
    with _engine(db).connect() as conn:
        seen = _before_count(conn, project)  # NotFound before any host is asked
        counted = _count(conn, where, project)
        with conn.begin():  # a report takes no lock: it reads the claims as they are
            project_id, limits = _project_row(conn, project)
            used = _in_use(conn, counted, project_id, seen)
            used["forwards"] = _forwards_used(conn, project_id)
    used["networks"] = _networks_used(where, project)
    return {"quota": {q: {"limit": limits[q], "used": used[q]} for q in QUOTA_FIELDS}, "vms": list(counted.usage.vms),
            "hosts": counted.hosts, "complete": not counted.unknown}


def _forwards_used(conn: Connection, project_id: int) -> int:
    from vmdeck.store.db import PortForward

    return int(conn.scalar(select(func.count()).select_from(PortForward).where(PortForward.project_id == project_id))
               or 0)


def _networks_used(where: Where, project: str) -> int:
    """The networks vmdeck made for `project`, on the one host or summed over the registered hosts that answer."""
    from vmdeck.vm.networks import project_networks

    if isinstance(where, Host):
        return len(project_networks(where, project))
    return sum(a.value for a in where.each(lambda host, _entry: len(project_networks(host, project)))
               if a.value is not None)


@contextlib.contextmanager
def network_room(db: sessionmaker[Session], host: Host, project: str) -> Iterator[None]:
    """Room for one more network of `project` on `host` (QuotaExceeded otherwise), checked before anything
    exists; the project's quota lock is held while the body creates it, so two creates cannot both take
    the last one."""
    from vmdeck.vm.networks import project_networks

    with _engine(db).connect() as conn, conn.begin():
        _project_id, limits = _locked_project(conn, project)
        check_count(project, "networks", limits["networks"], len(project_networks(host, project)))
        yield


def project_vms(db: sessionmaker[Session], where: Where, project: str) -> list[str]:
    """The project's VMs on every host, for deleting a project: refused (HostError) while a host that may hold
    some is unknown."""
    with _engine(db).connect() as conn:
        counted = _count(conn, where, project)
    if counted.unknown:
        host, why = next(iter(counted.unknown.items()))
        raise HostError(f"cannot tell whether project {project} has VMs on host {host}: it does not answer ({why})")
    return list(counted.usage.vms)


@contextlib.contextmanager
def reserve(db: sessionmaker[Session], where: Where, project: str, demand: Demand, what: str, *,
            on: Host | None = None) -> Iterator[None]:
    """Hold `demand` for `what` ("vm:NAME", "iso:NAME") while the body runs; QuotaExceeded when it does not fit.
    `where`: the hosts whose VMs count; `on`: the host the body creates on (its kept use grows when it succeeds)."""
    engine = _engine(db)
    kind, _, thing = what.partition(":")
    held_amounts = Demand(**{k: max(0, v) for k, v in asdict(demand).items()})  # a shrink holds nothing
    with engine.connect() as conn:
        changing = False
        for attempt in range(_RECOUNTS + 1):
            if changing:
                time.sleep(min(0.5, 0.02 * attempt))
            seen = _before_count(conn, project)  # NotFound before any host is asked
            counted = _count(conn, where, project)  # the slow part: no lock held, no transaction open
            with conn.begin():  # the decision: a few statements under the project's lock
                project_id, limits = _locked_project(conn, project)
                forget_dead_here(conn)
                rows = _claim_rows(conn, project_id, seen)
                if attempt < _RECOUNTS and any(w.startswith("change:") for w, _r, *_ in rows):
                    # A resize in progress, or released while we counted: the count may or may not have seen its
                    # growth, and counting its reservation too would count the growth twice. Count again once
                    # it is done (a resize is one libvirt call); the last try counts it, never too little.
                    changing = True
                    continue
                if kind == "vm" and any(w == what and r is None for w, r, *_ in rows):
                    # One reservation per VM name: a second create of the same name racing the first loses here,
                    # as it would at libvirt's define a moment later.
                    raise Conflict(f"a VM named {thing!r} is being created right now")
                _refuse_unknown(project, counted, limits, demand)
                _check(project, limits, _in_use(conn, counted, project_id, seen, rows, iso=demand.iso_gib > 0), demand)
                reservation = conn.execute(insert(Reservation).values(
                    project_id=project_id, what=what, created_at=utcnow(), owner=owner(), expires_at=expiry(),
                    **asdict(held_amounts)).returning(Reservation.id)).scalar_one()
                break
    done = False
    try:
        with held(engine):
            yield
        done = True
    finally:
        _release(engine, where, on, project, demand, reservation, what, done)


def _release(engine: Engine, where: Where, on: Host | None, project: str, demand: Demand, reservation: int,
             what: str, done: bool) -> None:
    kind, _, thing = what.partition(":")
    with engine.begin() as conn:
        if not done or kind == "iso":
            conn.execute(delete(Reservation).where(Reservation.id == reservation))
        else:
            if on is not None and not isinstance(where, Host):
                _locked_project(conn, project)  # the kept use is read and written back: one writer
                # In the same transaction as the release: no moment where the VM counts nowhere kept.
                _grow_kept(conn, where, on, project, demand, thing if kind == "vm" else None)
            elif conn.dialect.name == "sqlite":
                counters.immediate(conn)
            # Kept a while as released: a count that began before now may have missed the VM (counters.py).
            seq = counters.bump(conn, _counter(project))
            conn.execute(update(Reservation).where(Reservation.id == reservation)
                         .values(released_seq=seq, expires_at=time.time() + _RELEASED_KEEP_S))
        global _swept
        if time.monotonic() - _swept > _SWEEP_S:  # not needed for correctness (they no longer count): now and then
            # The leases that lapsed and the releases kept long enough: gone, so the table stays small.
            conn.execute(delete(Reservation).where(Reservation.expires_at < time.time() - 60))
            _swept = time.monotonic()


def locked_change(db: sessionmaker[Session], where: Where, project: str, demand: Demand, change: Callable[[], Any], *,
                  on: Host | None = None) -> Any:
    """Check that `demand` (a growth: new minus old) fits, and run `change` (on host `on`) holding the growth as a
    reservation, so concurrent checks count it while libvirt applies it (no database lock held meanwhile)."""
    with reserve(db, where, project, demand, f"change:{secrets.token_hex(8)}", on=on):
        return change()


def publish_iso(db: sessionmaker[Session], host: Host, project: str | None, name: str, size_bytes: int,
                publish: Callable[[], None]) -> None:
    """Check the project's ISO quota for `size_bytes`, `publish` the file, record its owner; the size is held as
    a reservation while the file is published."""
    if project is None:
        publish()
        return
    engine = _engine(db)
    demand = Demand(iso_gib=size_bytes / 2**30)
    with engine.begin() as conn:
        project_id, limits = _locked_project(conn, project)
        used = {"iso_gib": iso_usage_gib(conn, project_id) + _reserved(conn, project_id, (), None).iso_gib}
        _check(project, {"iso_gib": limits["iso_gib"]}, used, demand)
        reservation = conn.execute(insert(Reservation).values(
            project_id=project_id, what=f"iso:{name}", created_at=utcnow(), owner=owner(), expires_at=expiry(),
            iso_gib=demand.iso_gib).returning(Reservation.id)).scalar_one()
    published = False
    try:
        with held(engine):
            publish()
        published = True
    finally:
        with engine.begin() as conn:
            conn.execute(delete(Reservation).where(Reservation.id == reservation))
            if published:
                conn.execute(insert(IsoOwner).values(name=name, project_id=project_id, size_bytes=size_bytes,
                                                     created_at=utcnow()))


def remaining(db: sessionmaker[Session], where: Where, project: str, quota: str) -> float | None:
    """How much of `quota` is left (None: no limit). The ISO quota is counted in the database alone: no host is asked."""
    if quota != "iso_gib":
        report = usage_report(db, where, project)["quota"][quota]
        return None if report["limit"] is None else max(0.0, report["limit"] - report["used"])
    with _engine(db).connect() as conn:
        project_id, limits = _project_row(conn, project)
        used = iso_usage_gib(conn, project_id) + _reserved(conn, project_id, (), None).iso_gib
    limit = limits["iso_gib"]
    return None if limit is None else max(0.0, limit - used)

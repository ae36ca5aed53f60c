"""Project quotas: usage against limits, and reservations that make concurrent creates safe (store layer).

Usage is counted on configured sizes from libvirt (vmdeck.vm.project.project_usage:
shut-off VMs count) on every registered host (vmdeck.cluster.usage: all hosts at once,
under the fleet's deadlines), plus the reservations of creates still in progress. A create
reserves in one SQLite write transaction (BEGIN IMMEDIATE: one writer at a time,
across processes, so the API and the CLI see each other) and releases the
reservation when it ends, whether it succeeded (libvirt then counts the VM) or not.
A resize checks and applies its change while holding the same write lock.

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
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from vmdeck.cluster.fleet import Fleet
from vmdeck.cluster.usage import count_everywhere
from vmdeck.errors import Conflict, HostError, NotFound
from vmdeck.host.connection import Host
from vmdeck.store.db import utcnow
from vmdeck.store.tenancy import QUOTA_FIELDS
from vmdeck.vm.project import Usage, project_usage

# Where a project's VMs are counted: the one host of a server without a registry, or every registered host.
Where = Host | Fleet

__all__ = ["Where", "QuotaExceeded", "Demand", "demand_for", "usage_report", "project_vms", "reserve", "locked_change",
           "iso_usage_gib", "remaining", "publish_iso"]

# A reservation older than this belongs to a process that died mid-create: it no longer counts.
_STALE = dt.timedelta(hours=1)
_UNITS = {"instances": "", "vcpus": "", "memory_mib": " MiB", "disk_gib": " GiB", "iso_gib": " GiB"}


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


def _raw(db: sessionmaker[Session]) -> sqlite3.Connection:
    engine = db.kw["bind"]
    conn = engine.raw_connection()
    return conn  # type: ignore[no-any-return]


@contextlib.contextmanager
def _immediate(db: sessionmaker[Session]) -> Iterator[Any]:
    """A cursor inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): SQLite's one writer at a time."""
    conn = _raw(db)
    driver = conn.driver_connection  # type: ignore[attr-defined]
    saved = driver.isolation_level
    driver.isolation_level = None  # we say BEGIN ourselves
    cur = driver.cursor()
    try:
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
    finally:
        driver.isolation_level = saved
        conn.close()


def _project_row(cur: Any, project: str) -> tuple[int, dict[str, float | None]]:
    row = cur.execute(f"SELECT id, {', '.join(QUOTA_FIELDS.values())} FROM projects WHERE name = ?",
                      (project,)).fetchone()
    if row is None:
        raise NotFound(f"no project named {project!r}")
    return int(row[0]), dict(zip(QUOTA_FIELDS, row[1:], strict=True))


def iso_usage_gib(cur: Any, project_id: int) -> float:
    total = cur.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM isos WHERE project_id = ?", (project_id,)).fetchone()
    return float(total[0]) / 2**30


def _reserved(cur: Any, project_id: int, existing: tuple[str, ...]) -> Demand:
    cur.execute("DELETE FROM reservations WHERE created_at < ?", (str(utcnow() - _STALE),))
    rows = cur.execute("SELECT what, instances, vcpus, memory_mib, disk_gib, iso_gib FROM reservations "
                       "WHERE project_id = ?", (project_id,)).fetchall()
    total = [0, 0, 0, 0.0, 0.0]
    for what, *amounts in rows:
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

    def add(self, host: str, usage: Usage, counted: str, **extra: Any) -> None:
        self.usage = Usage(self.usage.instances + usage.instances, self.usage.vcpus + usage.vcpus,
                           self.usage.memory_mib + usage.memory_mib, round(self.usage.disk_gib + usage.disk_gib, 3),
                           tuple(sorted((*self.usage.vms, *usage.vms))))
        self.hosts[host] = {"instances": usage.instances, "vcpus": usage.vcpus, "memory_mib": usage.memory_mib,
                            "disk_gib": usage.disk_gib, "vms": list(usage.vms), "counted": counted, **extra}


def _when(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _keep(cur: Any, uri: str, host: str, project: str, usage: Usage, projects: frozenset[str]) -> None:
    now = time.time()
    cur.execute("INSERT OR REPLACE INTO host_usage (uri, project, host, instances, vcpus, memory_mib, disk_gib, vms, "
                "counted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (uri, project, host, usage.instances, usage.vcpus, usage.memory_mib, usage.disk_gib,
                 json.dumps(list(usage.vms)), now))
    cur.execute("INSERT OR REPLACE INTO hosts_counted (uri, projects, counted_at) VALUES (?, ?, ?)",
                (uri, json.dumps(sorted(projects)), now))


def _kept(cur: Any, uri: str, project: str) -> tuple[Usage, float] | None:
    """The project's use on `uri` at its last count (a project that had no VM there then: none), or None."""
    row = cur.execute("SELECT instances, vcpus, memory_mib, disk_gib, vms, counted_at FROM host_usage "
                      "WHERE uri = ? AND project = ?", (uri, project)).fetchone()
    if row is not None:
        instances, vcpus, memory, disk, vms, at = row
        return Usage(int(instances), int(vcpus), int(memory), float(disk), tuple(json.loads(vms))), float(at)
    seen = cur.execute("SELECT projects, counted_at FROM hosts_counted WHERE uri = ?", (uri,)).fetchone()
    if seen is not None and project not in json.loads(seen[0]):
        return Usage(), float(seen[1])
    return None


def _count(cur: Any, where: Where, project: str) -> _Counted:
    counted = _Counted()
    if isinstance(where, Host):
        counted.add("local", project_usage(where, project), "live")
        return counted
    for answer in count_everywhere(where, project):
        entry = answer.entry
        if answer.value is not None:
            _keep(cur, entry.connect_uri, entry.name, project, answer.value.usage, answer.value.projects)
            counted.add(entry.name, answer.value.usage, "live")
            continue
        kept = _kept(cur, entry.connect_uri, project)
        if kept is None:
            counted.unknown[entry.name] = str(answer.error)
            counted.hosts[entry.name] = {"counted": "unknown", "reason": str(answer.error)}
        else:
            counted.add(entry.name, kept[0], "kept", counted_at=_when(kept[1]), reason=str(answer.error))
    return counted


def _in_use(cur: Any, where: Where, project: str, project_id: int) -> tuple[dict[str, float], _Counted]:
    counted = _count(cur, where, project)
    usage = counted.usage
    held = _reserved(cur, project_id, tuple(f"vm:{n}" for n in usage.vms))
    return {"instances": usage.instances + held.instances, "vcpus": usage.vcpus + held.vcpus,
            "memory_mib": usage.memory_mib + held.memory_mib, "disk_gib": round(usage.disk_gib + held.disk_gib, 3),
            "iso_gib": round(iso_usage_gib(cur, project_id) + held.iso_gib, 6)}, counted


def _counted_in_use(cur: Any, where: Where, project: str, project_id: int,
                    limits: dict[str, float | None], demand: Demand) -> dict[str, float]:
    """Use for a check of `demand`: a host whose share is unknown refuses the check when a limit applies."""
    used, counted = _in_use(cur, where, project, project_id)
    bound = [q for q, wanted in asdict(demand).items() if wanted > 0 and limits.get(q) is not None]
    if counted.unknown and bound:
        host, why = next(iter(counted.unknown.items()))
        raise HostError(f"cannot check the quotas of project {project}: host {host} does not answer ({why}) "
                        f"and its VMs were never counted; retry when it answers, or remove it from the registry")
    return used


def _grow_kept(cur: Any, where: Where, on: Host | None, project: str, demand: Demand, vm: str | None) -> None:
    """Add what a create or resize on host `on` took to that host's kept use (it was counted, live, just before)."""
    if on is None or isinstance(where, Host):
        return
    row = cur.execute("SELECT vms FROM host_usage WHERE uri = ? AND project = ?", (on.uri, project)).fetchone()
    if row is None:
        return
    vms = json.loads(row[0])
    if vm is not None and vm in vms:
        return  # a count since the create's own already saw the new VM
    cur.execute("UPDATE host_usage SET instances = instances + ?, vcpus = vcpus + ?, memory_mib = memory_mib + ?, "
                "disk_gib = disk_gib + ?, vms = ? WHERE uri = ? AND project = ?",
                (demand.instances, demand.vcpus, demand.memory_mib, demand.disk_gib,
                 json.dumps(sorted([*vms, vm] if vm is not None else vms)), on.uri, project))
    seen = cur.execute("SELECT projects FROM hosts_counted WHERE uri = ?", (on.uri,)).fetchone()
    if seen is not None and project not in json.loads(seen[0]):
        cur.execute("UPDATE hosts_counted SET projects = ? WHERE uri = ?",
                    (json.dumps(sorted([*json.loads(seen[0]), project])), on.uri))


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
    with _immediate(db) as cur:  # a consistent view: no reservation comes or goes while we add up
        project_id, limits = _project_row(cur, project)
        used, counted = _in_use(cur, where, project, project_id)
    return {"quota": {q: {"limit": limits[q], "used": used[q]} for q in QUOTA_FIELDS}, "vms": list(counted.usage.vms),
            "hosts": counted.hosts, "complete": not counted.unknown}


def project_vms(db: sessionmaker[Session], where: Where, project: str) -> list[str]:
    """The project's VMs on every host, for deleting a project: refused (HostError) while a host that may hold
    some is unknown."""
    with _immediate(db) as cur:
        counted = _count(cur, where, project)
    if counted.unknown:
        host, why = next(iter(counted.unknown.items()))
        raise HostError(f"cannot tell whether project {project} has VMs on host {host}: it does not answer ({why})")
    return list(counted.usage.vms)


@contextlib.contextmanager
def reserve(db: sessionmaker[Session], where: Where, project: str, demand: Demand, what: str, *,
            on: Host | None = None) -> Iterator[None]:
    """Hold `demand` for `what` ("vm:NAME", "iso:NAME") while the body runs; QuotaExceeded when it does not fit.
    `where`: the hosts whose VMs count; `on`: the host the body creates on (its kept use grows when it succeeds)."""
    with _immediate(db) as cur:
        project_id, limits = _project_row(cur, project)
        used = _counted_in_use(cur, where, project, project_id, limits, demand)
        _check(project, limits, used, demand)
        try:
            cur.execute("INSERT INTO reservations (project_id, what, instances, vcpus, memory_mib, disk_gib, "
                        "iso_gib, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (project_id, what, demand.instances, demand.vcpus, demand.memory_mib, demand.disk_gib,
                         demand.iso_gib, str(utcnow())))
        except sqlite3.IntegrityError:
            # One reservation per thing: a second create of the same VM name (or upload of the same
            # ISO) racing the first loses here, as it would at libvirt's define a moment later.
            kind, _, name = what.partition(":")
            raise Conflict(f"a {'VM' if kind == 'vm' else 'resource'} named {name!r} is being created "
                           "right now") from None
        reservation = cur.lastrowid
    done = False
    try:
        yield
        done = True
    finally:
        with _immediate(db) as cur:
            if done:  # in the same transaction as the release: no moment where the VM counts nowhere kept
                kind, _, name = what.partition(":")
                _grow_kept(cur, where, on, project, demand, name if kind == "vm" else None)
            cur.execute("DELETE FROM reservations WHERE id = ?", (reservation,))


def locked_change(db: sessionmaker[Session], where: Where, project: str, demand: Demand, change: Callable[[], Any], *,
                  on: Host | None = None) -> Any:
    """Check that `demand` (a growth: new minus old) fits, and run `change` (on host `on`) under the same write lock."""
    with _immediate(db) as cur:
        project_id, limits = _project_row(cur, project)
        used = _counted_in_use(cur, where, project, project_id, limits, demand)
        _check(project, limits, used, demand)
        result = change()
        _grow_kept(cur, where, on, project, demand, None)
        return result


def publish_iso(db: sessionmaker[Session], host: Host, project: str | None, name: str, size_bytes: int,
                publish: Callable[[], None]) -> None:
    """Under the write lock: check the project's ISO quota for `size_bytes`, `publish` the file, record its owner."""
    with _immediate(db) as cur:
        if project is None:
            publish()
            return
        project_id, limits = _project_row(cur, project)
        used = {"iso_gib": iso_usage_gib(cur, project_id)}
        _check(project, {"iso_gib": limits["iso_gib"]}, used, Demand(iso_gib=size_bytes / 2**30))
        publish()
        cur.execute("INSERT INTO isos (name, project_id, size_bytes, created_at) VALUES (?, ?, ?, ?)",
                    (name, project_id, size_bytes, str(utcnow())))


def remaining(db: sessionmaker[Session], where: Where, project: str, quota: str) -> float | None:
    """How much of `quota` is left (None: no limit). The ISO quota is counted in the database alone: no host is asked."""
    if quota != "iso_gib":
        report = usage_report(db, where, project)["quota"][quota]
        return None if report["limit"] is None else max(0.0, report["limit"] - report["used"])
    with _immediate(db) as cur:
        project_id, limits = _project_row(cur, project)
        used = iso_usage_gib(cur, project_id) + _reserved(cur, project_id, ()).iso_gib
    limit = limits["iso_gib"]
    return None if limit is None else max(0.0, limit - used)

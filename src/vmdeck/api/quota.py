"""Project quotas: usage against limits, and reservations that make concurrent creates safe (api layer).

Usage is counted on configured sizes from libvirt (vmdeck.vm.project.project_usage:
shut-off VMs count) plus the reservations of creates still in progress. A create
reserves in one SQLite write transaction (BEGIN IMMEDIATE: one writer at a time,
across processes, so the API and the CLI see each other) and releases the
reservation when it ends, whether it succeeded (libvirt then counts the VM) or not.
A resize checks and applies its change while holding the same write lock.

A refusal is 409 (kind "quota_exceeded", exit code 4 in the CLI) and names the quota,
the limit and the current use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.orm import sessionmaker

from vmdeck.api.db import utcnow
from vmdeck.api.tenancy import QUOTA_FIELDS
from vmdeck.errors import Conflict, NotFound
from vmdeck.host.connection import Host
from vmdeck.vm.project import Usage, project_usage

__all__ = ["QuotaExceeded", "Demand", "demand_for", "usage_report", "reserve", "locked_change", "iso_usage_gib",
           "remaining", "publish_iso"]

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


def _raw(db: sessionmaker) -> sqlite3.Connection:
    engine = db.kw["bind"]
    conn = engine.raw_connection()
    return conn  # type: ignore[no-any-return]


@contextlib.contextmanager
def _immediate(db: sessionmaker) -> Iterator[Any]:
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


def _in_use(cur: Any, host: Host, project: str, project_id: int) -> tuple[dict[str, float], Usage]:
    usage = project_usage(host, project)
    held = _reserved(cur, project_id, tuple(f"vm:{n}" for n in usage.vms))
    return {"instances": usage.instances + held.instances, "vcpus": usage.vcpus + held.vcpus,
            "memory_mib": usage.memory_mib + held.memory_mib, "disk_gib": round(usage.disk_gib + held.disk_gib, 3),
            "iso_gib": round(iso_usage_gib(cur, project_id) + held.iso_gib, 6)}, usage


def _check(project: str, limits: dict[str, float | None], used: dict[str, float], demand: Demand) -> None:
    for quota, wanted in asdict(demand).items():
        limit = limits.get(quota)
        if quota not in used:
            continue
        if limit is not None and wanted > 0 and used[quota] + wanted > limit + 1e-9:
            raise QuotaExceeded(project, quota, limit, used[quota], wanted)


def usage_report(db: sessionmaker, host: Host, project: str) -> dict[str, Any]:
    """{"quota": {name: {"limit", "used"}}, "vms": [...]} for `GET /api/projects/{p}` and `vmdeck project show`."""
    with _immediate(db) as cur:  # a consistent view: no reservation comes or goes while we add up
        project_id, limits = _project_row(cur, project)
        used, usage = _in_use(cur, host, project, project_id)
    return {"quota": {q: {"limit": limits[q], "used": used[q]} for q in QUOTA_FIELDS}, "vms": list(usage.vms)}


@contextlib.contextmanager
def reserve(db: sessionmaker, host: Host, project: str, demand: Demand, what: str) -> Iterator[None]:
    """Hold `demand` for `what` ("vm:NAME", "iso:NAME") while the body runs; QuotaExceeded when it does not fit."""
    with _immediate(db) as cur:
        project_id, limits = _project_row(cur, project)
        used, _usage = _in_use(cur, host, project, project_id)
        _check(project, limits, used, demand)
        cur.execute("INSERT INTO reservations (project_id, what, instances, vcpus, memory_mib, disk_gib, iso_gib, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (project_id, what, demand.instances, demand.vcpus, demand.memory_mib, demand.disk_gib,
                     demand.iso_gib, str(utcnow())))
        reservation = cur.lastrowid
    try:
        yield
    finally:
        with _immediate(db) as cur:
            cur.execute("DELETE FROM reservations WHERE id = ?", (reservation,))


def locked_change(db: sessionmaker, host: Host, project: str, demand: Demand, change: Callable[[], Any]) -> Any:
    """Check that `demand` (a growth: new minus old) fits, and run `change` under the same write lock."""
    with _immediate(db) as cur:
        project_id, limits = _project_row(cur, project)
        used, _usage = _in_use(cur, host, project, project_id)
        _check(project, limits, used, demand)
        return change()


def publish_iso(db: sessionmaker, host: Host, project: str | None, name: str, size_bytes: int,
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


def remaining(db: sessionmaker, host: Host, project: str, quota: str) -> float | None:
    """How much of `quota` is left (None: no limit)."""
    report = usage_report(db, host, project)["quota"][quota]
    return None if report["limit"] is None else max(0.0, report["limit"] - report["used"])


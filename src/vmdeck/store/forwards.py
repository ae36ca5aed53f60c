"""Port forwards in the database (store layer): who forwards which host port to which VM's port.

The rows are the truth the firewall is made from (vmdeck.vm.forward_firewall): the nftables table is
rebuilt from them at every change, at `vmdeck serve`'s start and after a VM starts. A forward belongs to
its VM's project and counts against that project's `forwards` quota, checked under the project's lock
in the same transaction as the insert. (address, proto, host_port) is unique: the database refuses a
second forward of one port even when two requests race.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from vmdeck.errors import Conflict, NotFound
from vmdeck.store.db import PortForward, Project, utcnow
from vmdeck.store.quota import check_count, locked_project

__all__ = ["Forward", "Forwards"]


@dataclass(frozen=True)
class Forward:
    id: int
    project: str | None
    vm: str
    network: str
    mac: str
    address: str
    proto: str
    host_port: int
    guest_ip: str
    guest_port: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "project": self.project, "vm": self.vm, "network": self.network, "mac": self.mac,
                "address": self.address, "proto": self.proto, "host_port": self.host_port,
                "guest_ip": self.guest_ip, "guest_port": self.guest_port}

    @property
    def label(self) -> str:
        return f"{self.address}:{self.host_port}/{self.proto}"


def _taken(address: str, proto: str, port: int) -> Conflict:
    return Conflict(f"{address}:{port}/{proto} is forwarded already")


class Forwards:
    def __init__(self, db: sessionmaker[Session]) -> None:
        self.db = db

    def _rows(self, *where: Any) -> list[Forward]:
        with self.db() as s:
            rows = s.execute(select(PortForward, Project.name).outerjoin(Project, Project.id == PortForward.project_id)
                             .where(*where).order_by(PortForward.vm, PortForward.address, PortForward.proto,
                                                     PortForward.host_port)).all()
        return [Forward(f.id, project, f.vm, f.network, f.mac, f.address, f.proto, f.host_port, f.guest_ip,
                        f.guest_port) for f, project in rows]

    def all(self) -> list[Forward]:
        return self._rows()

    def of_vm(self, vm: str) -> list[Forward]:
        return self._rows(PortForward.vm == vm)

    def of_projects(self, projects: list[str]) -> list[Forward]:
        return self._rows(Project.name.in_(projects))

    def find(self, address: str, proto: str, port: int) -> Forward | None:
        found = self._rows(PortForward.address == address, PortForward.proto == proto, PortForward.host_port == port)
        return found[0] if found else None

    def count(self, project: str) -> int:
        with self.db() as s:
            return int(s.scalar(select(func.count()).select_from(PortForward).join(
                Project, Project.id == PortForward.project_id).where(Project.name == project)) or 0)

    def check_room(self, project: str | None, address: str, proto: str, port: int) -> None:
        """The checks of `add`, made before anything else is touched (a reservation, the firewall)."""
        if self.find(address, proto, port) is not None:
            raise _taken(address, proto, port)
        if project is not None:
            with self.db() as s:
                row = s.execute(select(Project.max_forwards).where(Project.name == project)).first()
            if row is None:
                raise NotFound(f"no project named {project!r}")
            check_count(project, "forwards", row[0], self.count(project))

    def add(self, project: str | None, vm: str, network: str, mac: str, address: str, proto: str, host_port: int,
            guest_ip: str, guest_port: int) -> Forward:
        """Record a forward: Conflict when the port is forwarded already, QuotaExceeded past the project's limit."""
        engine = self.db.kw["bind"]
        try:
            with engine.begin() as conn:
                project_id = None
                if project is not None:
                    project_id, limits = locked_project(conn, project)
                    used = conn.scalar(select(func.count()).select_from(PortForward)
                                       .where(PortForward.project_id == project_id))
                    check_count(project, "forwards", limits["forwards"], int(used or 0))
                conn.execute(insert(PortForward).values(
                    project_id=project_id, vm=vm, network=network, mac=mac, address=address, proto=proto,
                    host_port=host_port, guest_ip=guest_ip, guest_port=guest_port, created_at=utcnow()))
        except IntegrityError:
            raise _taken(address, proto, host_port) from None
        made = self.find(address, proto, host_port)
        assert made is not None
        return made

    def remove(self, forward_id: int) -> None:
        with self.db.begin() as s:
            s.execute(delete(PortForward).where(PortForward.id == forward_id))

    def remove_vm(self, vm: str) -> list[Forward]:
        gone = self.of_vm(vm)
        with self.db.begin() as s:
            s.execute(delete(PortForward).where(PortForward.vm == vm))
        return gone

    def set_guest_ip(self, forward_id: int, guest_ip: str) -> None:
        with self.db.begin() as s:
            s.execute(update(PortForward).where(PortForward.id == forward_id).values(guest_ip=guest_ip))

"""Projects, memberships and quotas in the database (store layer).

Used by the REST API and by the host administrator's CLI (`vmdeck project|user`),
both on the same SQLite file. A VM's project is not stored here but in its libvirt
metadata (vmdeck.vm.project); this module holds who belongs to which project, with
which role, and how much the project may take.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Integer, MetaData, String, Table, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from vmdeck.errors import Conflict, InvalidInput, NotFound
from vmdeck.store.db import ApiToken, IsoOwner, Membership, Project, User, WebSession
from vmdeck.vm.project import check_project_name

if TYPE_CHECKING:
    from vmdeck.store.accounts import Principal  # (accounts imports this module)

__all__ = ["ROLES", "QUOTA_FIELDS", "DEFAULT_PROJECT", "USER_NETWORK", "role_rank", "check_role", "ProjectInfo", "Tenancy"]

# Each role can do what the one before it can, and more (vmdeck.api.policy says what).
ROLES = ("viewer", "operator", "manager")
# Quota name -> Project column; None in the column is "no limit".
QUOTA_FIELDS = {"instances": "max_instances", "vcpus": "max_vcpus", "memory_mib": "max_memory_mib",
                "disk_gib": "max_disk_gib", "iso_gib": "max_iso_gib",
                "networks": "max_networks", "forwards": "max_forwards"}  # the last two: migration 0014
DEFAULT_PROJECT = "default"
# QEMU's user-mode network: private to each VM, reaches nothing of the host's: every project may use it.
USER_NETWORK = "user"
_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+:-]{0,63}")
# The libvirt networks an administrator allowed each project (migration 0010); no ORM class needed.
_PROJECT_NETWORKS = Table("project_networks", MetaData(), Column("project_id", Integer, primary_key=True),
                          Column("network", String(64), primary_key=True))


def role_rank(role: str | None) -> int:
    """0 for no role, 1 viewer, 2 operator, 3 manager."""
    return ROLES.index(role) + 1 if role in ROLES else 0


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r}: one of {', '.join(ROLES)}", field="role")
    return role


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    quota: dict[str, float | int | None]
    members: dict[str, str]  # user name -> role

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "quota": self.quota, "members": self.members}


class Tenancy:
    def __init__(self, db: sessionmaker[Session]) -> None:
        self.db = db

    # --- projects ----------------------------------------------------------------------------------
    def create_project(self, name: str, quota: dict[str, float | int | None] | None = None) -> ProjectInfo:
        check_project_name(name)
        try:
            with self.db.begin() as s:
                if s.scalar(select(Project.id).where(Project.name == name)) is not None:
                    raise Conflict(f"a project named {name!r} already exists")
                s.add(Project(name=name, **_quota_columns(quota or {})))
        except IntegrityError:  # another request made it between our check and our insert
            raise Conflict(f"a project named {name!r} already exists") from None
        return self.project(name)

    def ensure_project(self, name: str) -> ProjectInfo:
        """The project, created (without limits) when it does not exist yet: how `default` appears."""
        try:
            return self.project(name)
        except NotFound:
            try:
                return self.create_project(name)
            except Conflict:  # created meanwhile by another request or process
                return self.project(name)

    def project(self, name: str) -> ProjectInfo:
        with self.db() as s:
            row = s.scalar(select(Project).where(Project.name == name))
            if row is None:
                raise NotFound(f"no project named {name!r}")
            members = s.execute(select(User.username, Membership.role).join(User, User.id == Membership.user_id)
                                .where(Membership.project_id == row.id).order_by(User.username)).all()
            return ProjectInfo(row.id, row.name, {k: getattr(row, c) for k, c in QUOTA_FIELDS.items()},
                               {u: r for u, r in members})

    def project_names(self) -> list[str]:
        with self.db() as s:
            return list(s.scalars(select(Project.name).order_by(Project.name)).all())

    def set_quota(self, name: str, quota: dict[str, float | int | None]) -> ProjectInfo:
        """Change the given limits (None: remove that limit); limits not named are kept."""
        with self.db.begin() as s:
            row = s.scalar(select(Project).where(Project.name == name))
            if row is None:
                raise NotFound(f"no project named {name!r}")
            for column, value in _quota_columns(quota).items():
                setattr(row, column, value)
        return self.project(name)

    def delete_project(self, name: str, vms: list[str]) -> None:
        """Delete an empty project (`vms`: the VMs libvirt still records in it, which must be none)."""
        if vms:
            raise Conflict(f"project {name!r} still has VMs: {', '.join(vms)} (delete or adopt them elsewhere first)")
        with self.db.begin() as s:
            row = s.scalar(select(Project).where(Project.name == name))
            if row is None:
                raise NotFound(f"no project named {name!r}")
            isos = s.scalars(select(IsoOwner.name).where(IsoOwner.project_id == row.id)).all()
            if isos:
                raise Conflict(f"project {name!r} still has ISOs: {', '.join(isos)}")
            s.execute(delete(_PROJECT_NETWORKS).where(_PROJECT_NETWORKS.c.project_id == row.id))
            s.delete(row)

    # --- members -----------------------------------------------------------------------------------
    def set_member(self, username: str, project: str, role: str) -> None:
        check_role(role)
        with self.db.begin() as s:
            user_id = _user_id(s, username)
            project_id = _project_id(s, project)
            row = s.get(Membership, (user_id, project_id))
            if row is None:
                s.add(Membership(user_id=user_id, project_id=project_id, role=role))
            else:
                row.role = role
            # A token may never hold more than its owner: cap the owner's tokens in this project.
            for token in s.scalars(select(ApiToken).where(ApiToken.user_id == user_id,
                                                          ApiToken.project_id == project_id)):
                if role_rank(token.role) > role_rank(role):
                    token.role = role

    def remove_member(self, username: str, project: str) -> None:
        with self.db.begin() as s:
            user_id = _user_id(s, username)
            project_id = _project_id(s, project)
            s.execute(delete(Membership).where(Membership.user_id == user_id, Membership.project_id == project_id))
            s.execute(delete(ApiToken).where(ApiToken.user_id == user_id, ApiToken.project_id == project_id))

    def roles_of(self, user_id: int) -> dict[str, str]:
        """project name -> role of one user."""
        with self.db() as s:
            rows = s.execute(select(Project.name, Membership.role).join(Project, Project.id == Membership.project_id)
                             .where(Membership.user_id == user_id)).all()
            return {p: r for p, r in rows}

    # --- networks a project may use ----------------------------------------------------------------
    def networks(self, project: str) -> list[str]:
        """The libvirt networks `project` may put NICs on, besides QEMU's user network."""
        with self.db() as s:
            project_id = _project_id(s, project)
            return list(s.scalars(select(_PROJECT_NETWORKS.c.network)
                                  .where(_PROJECT_NETWORKS.c.project_id == project_id)
                                  .order_by(_PROJECT_NETWORKS.c.network)).all())

    def allow_network(self, project: str, network: str) -> list[str]:
        _check_network_name(network)
        with self.db.begin() as s:
            project_id = _project_id(s, project)
            if s.scalar(select(_PROJECT_NETWORKS.c.network).where(_PROJECT_NETWORKS.c.project_id == project_id,
                                                                  _PROJECT_NETWORKS.c.network == network)) is None:
                s.execute(insert(_PROJECT_NETWORKS).values(project_id=project_id, network=network))
        return self.networks(project)

    def disallow_network(self, project: str, network: str) -> list[str]:
        _check_network_name(network)
        with self.db.begin() as s:
            project_id = _project_id(s, project)
            s.execute(delete(_PROJECT_NETWORKS).where(_PROJECT_NETWORKS.c.project_id == project_id,
                                                      _PROJECT_NETWORKS.c.network == network))
        return self.networks(project)

    def check_networks(self, project: str | None, networks: Iterable[str], *, by: Principal | None) -> None:
        """Refuse a NIC on a network `project` was not allowed, to a caller `by` who is not a host
        administrator (they use any network).

        The refusal is the 404 of a network that does not exist, naming only the network asked for: a
        tenant learns neither which networks the host has nor which other projects were allowed."""
        if by is not None and by.admin:
            return
        wanted = [n for n in networks if n != USER_NETWORK]
        if not wanted:
            return
        try:
            allowed = set(self.networks(project)) if project is not None else set()
        except NotFound:  # a project not made yet (`default` before its first VM) was allowed nothing
            allowed = set()
        for network in wanted:
            if network not in allowed:
                raise NotFound(f"no network named {network!r} for project {project} "
                               f"(use {USER_NETWORK!r}, or ask an administrator to allow one)")

    # --- ISO owners --------------------------------------------------------------------------------
    def iso_owner(self, name: str) -> str | None:
        """The project that uploaded the ISO; None for one the host's admin put in the library."""
        with self.db() as s:
            owner: str | None = s.scalar(select(Project.name).join(IsoOwner, IsoOwner.project_id == Project.id)
                                         .where(IsoOwner.name == name))
            return owner

    def iso_owners(self) -> dict[str, str]:
        with self.db() as s:
            return {n: p for n, p in s.execute(select(IsoOwner.name, Project.name)
                                               .join(Project, Project.id == IsoOwner.project_id)).all()}

    def forget_iso(self, name: str) -> None:
        with self.db.begin() as s:
            s.execute(delete(IsoOwner).where(IsoOwner.name == name))

    # --- users (the administrator's side) ----------------------------------------------------------
    def users(self) -> list[dict[str, Any]]:
        with self.db() as s:
            rows = s.scalars(select(User).order_by(User.username)).all()
            out = []
            for user in rows:
                roles = s.execute(select(Project.name, Membership.role)
                                  .join(Project, Project.id == Membership.project_id)
                                  .where(Membership.user_id == user.id).order_by(Project.name)).all()
                out.append({"username": user.username, "is_admin": user.is_admin, "disabled": user.disabled,
                            "projects": {p: r for p, r in roles}})
            return out

    def set_disabled(self, username: str, disabled: bool) -> None:
        with self.db.begin() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"no user named {username!r}")
            user.disabled = disabled
            if disabled:  # signed out everywhere at once
                s.execute(delete(WebSession).where(WebSession.user_id == user.id))

    def remove_user(self, username: str) -> None:
        with self.db.begin() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"no user named {username!r}")
            if user.is_admin and s.scalar(select(func.count()).select_from(User)
                                          .where(User.is_admin, User.id != user.id, ~User.disabled)) == 0:
                raise Conflict(f"{username!r} is the last administrator")
            s.delete(user)


def _check_network_name(network: str) -> None:
    if network == USER_NETWORK:
        raise InvalidInput(f"{USER_NETWORK!r} (QEMU's user network) is every project's: nothing to allow",
                           field="network")
    if not _NETWORK_NAME.fullmatch(network):
        raise InvalidInput(f"invalid network name {network!r}", field="network")


def _user_id(s: Any, username: str) -> int:
    user_id = s.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise NotFound(f"no user named {username!r}")
    return int(user_id)


def _project_id(s: Any, project: str) -> int:
    project_id = s.scalar(select(Project.id).where(Project.name == project))
    if project_id is None:
        raise NotFound(f"no project named {project!r}")
    return int(project_id)


def _quota_columns(quota: dict[str, float | int | None]) -> dict[str, float | int | None]:
    columns: dict[str, float | int | None] = {}
    for key, value in quota.items():
        if key not in QUOTA_FIELDS:
            raise InvalidInput(f"unknown quota {key!r} (known: {', '.join(QUOTA_FIELDS)})", field=key)
        if value is not None and value < 0:
            raise InvalidInput(f"quota {key}: a limit cannot be negative", field=key)
        columns[QUOTA_FIELDS[key]] = value
    return columns

"""Rules of the use-case layer that need no libvirt: who is held to a quota, the role an actor has in a project
it did not name, and refusals that come before anything is touched, each with its audit line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from vmdeck.host.connection import Host
from vmdeck.store.auditlog import Audit
from vmdeck.store.db import open_database
from vmdeck.store.quota import Demand
from vmdeck.store.tenancy import Tenancy
from vmdeck.usecases import Actor, Services, backups, learn, networks
from vmdeck.usecases.permissions import NotPermitted, authorize_in
from vmdeck.usecases.quota import has_quota, held

NO_HOST = cast(Host, None)  # each rule here decides before a host is asked


@pytest.fixture
def svc(tmp_path: Path) -> Services:
    db = open_database(tmp_path / "vmdeck.sqlite")
    return Services(db, Tenancy(db), Audit(db))


def _last(svc: Services) -> tuple[Any, ...]:
    entry = svc.audit.entries(None, limit=1)[0]
    return entry["action"], entry["project"], entry["vm"], entry["status"], entry["result"]


def _member(role: str, project: str = "acme", elsewhere: dict[str, str] | None = None) -> Actor:
    roles = {project: role, **(elsewhere or {})}
    return Actor(user="ann", origin="api", role=role, project=project, project_known=True, via="session",
                 role_of=roles.get)


def test_a_project_without_a_row_here_is_held_to_no_quota(svc: Services) -> None:
    def never() -> Demand:
        raise AssertionError("a VM without a quota is never measured")

    assert not has_quota(svc, None) and not has_quota(svc, "faraway")
    with held(svc, NO_HOST, "faraway", never, "vm:x"):
        pass
    with held(svc, NO_HOST, None, never, "vm:x"):
        pass
    svc.tenancy.create_project("acme")
    assert has_quota(svc, "acme")
    with held(svc, NO_HOST, "acme", None, "snapshot:x"):  # an operation that takes nothing holds nothing
        pass


def test_an_actor_has_its_role_in_the_projects_it_did_not_name() -> None:
    ann = _member("operator", elsewhere={"beta": "manager"})
    assert (ann.role_in("acme"), ann.role_in("beta"), ann.role_in("gamma"), ann.role_in(None)) == \
        ("operator", "manager", None, None)
    authorize_in(ann, "network.manage", "beta")
    with pytest.raises(NotPermitted):
        authorize_in(ann, "network.manage", "acme")
    root = Actor.cli("network create n")
    assert root.role_in("anything") == "admin"


def test_a_learn_step_that_acts_needs_the_role_of_what_it_does(svc: Services) -> None:
    viewer = _member("viewer")
    with pytest.raises(NotPermitted, match="hotplug.*manager"):
        learn.run_step(svc, viewer, NO_HOST, "web1", "hotplug")
    assert _last(svc)[:4] == ("vm.learn", None, "web1", 403)  # a refusal names no project (audited())
    assert viewer.recorded  # the API writes no second line


def test_a_network_of_no_project_is_an_administrators(svc: Services) -> None:
    manager = _member("manager")
    with pytest.raises(NotPermitted, match="manager role in its project"):
        networks.create(svc, manager, NO_HOST, "n1", subnet="10.9.9.0/24", project=None)
    with pytest.raises(NotPermitted, match="network.manage needs manager"):
        networks.create(svc, _member("operator"), NO_HOST, "n1", subnet="10.9.9.0/24", project="acme")
    assert _last(svc)[:4] == ("network.manage", None, None, 403)


def test_stopping_every_projects_backups_is_the_host_administrators(svc: Services) -> None:
    with pytest.raises(NotPermitted):
        backups.cancel(svc, _member("manager"), NO_HOST, None)
    assert _last(svc)[:4] == ("backup.create", None, None, 403)


def test_a_projects_allowed_networks_are_changed_by_the_host_administrator_only(svc: Services) -> None:
    svc.tenancy.create_project("acme")
    assert networks.allowed_networks(svc, Actor.cli("project networks acme +lan"), "acme", allow=["lan"],
                                     disallow=[]) == ["lan"]
    assert _last(svc)[:4] == ("project.manage", "acme", None, 200)
    with pytest.raises(NotPermitted):
        networks.allowed_networks(svc, _member("manager"), "acme", allow=["wan"], disallow=[])
    assert svc.tenancy.networks("acme") == ["lan"]

"""The use cases' permission table agrees with the API's policy table, and holds for every door."""

from __future__ import annotations

import pytest

from vmdeck.api.policy import POLICY
from vmdeck.usecases import Actor
from vmdeck.usecases.permissions import ACTION_NEEDS, NotPermitted, authorize


def test_every_use_case_action_needs_what_the_api_policy_says() -> None:
    shared = {action for action in ACTION_NEEDS if action in POLICY}
    assert shared >= {"vm.create", "vm.delete", "vm.power", "vm.snapshot", "vm.clone", "vm.resize", "vm.devices",
                      "vm.media", "vm.migrate", "host.manage", "iso.upload", "iso.delete"}
    assert {a: ACTION_NEEDS[a] for a in shared} == {a: POLICY[a].need for a in shared}


@pytest.mark.parametrize(("role", "action", "allowed"), [
    ("admin", "vm.migrate", True), ("manager", "vm.migrate", False), ("manager", "vm.clone", True),
    ("operator", "vm.clone", False), ("operator", "vm.power", True), ("viewer", "vm.power", False),
    (None, "vm.power", False)])
def test_roles(role: str | None, action: str, allowed: bool) -> None:
    actor = Actor(user="u", origin="api", role=role, project="p", project_known=True)
    if allowed:
        authorize(actor, action, "p")
        return
    with pytest.raises(NotPermitted) as refused:
        authorize(actor, action, "p")
    assert refused.value.http_status == 403 and action in refused.value.message


def test_the_command_line_acts_as_the_host_administrator() -> None:
    actor = Actor.cli("start x")
    assert actor.admin and actor.origin == "cli" and actor.via == "cli"
    authorize(actor, "vm.migrate", None)

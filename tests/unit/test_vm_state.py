"""The one state model: VmState, the power-verb table, allowed_actions, on libvirt's test driver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testdriver import open_test_host
from vmdeck.errors import InvalidInput, StateError
from vmdeck.host.connection import Host
from vmdeck.vm import lifecycle
from vmdeck.vm.inventory import list_vms, show_vm
from vmdeck.vm.state import ACTIVE, POWER_VERBS, VmState, allowed_actions, current_state, to_state


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    with open_test_host(tmp_path) as opened:
        yield opened


def _put_in(host: Host, state: VmState) -> None:
    """Bring the node's VM 'busy' (running at first) into `state` with libvirt's own calls."""
    dom = host.lookup("busy")
    if state == VmState.SHUT_OFF:
        dom.poweroff()
    elif state == VmState.PAUSED:
        dom.pause()
    assert current_state(dom) == state


def test_the_rules_users_see() -> None:
    assert allowed_actions("running") == ["shutdown", "poweroff", "reboot", "reset", "pause", "delete"]
    assert allowed_actions("paused") == ["poweroff", "reset", "resume", "delete"]
    assert allowed_actions("shut off") == ["start", "delete"]
    assert allowed_actions("crashed") == ["start", "delete"]
    # What vm.js used to get wrong: a blocked VM can be shut down; a suspended one has a QEMU process.
    assert "shutdown" in allowed_actions("blocked")
    assert allowed_actions("suspended") == ["poweroff", "delete"] and VmState.SUSPENDED.active
    assert allowed_actions("unknown (9)") == ["delete"] and to_state("unknown (9)") == VmState.NO_STATE
    assert ACTIVE == {s.value for s in VmState if s.active}


@pytest.mark.parametrize("state", [VmState.RUNNING, VmState.PAUSED, VmState.SHUT_OFF])
@pytest.mark.parametrize("verb", sorted(POWER_VERBS))
def test_every_verb_does_what_the_table_says(host: Host, state: VmState, verb: str) -> None:
    # The table is the truth for the core too: an allowed verb goes through to libvirt,
    # a forbidden one is refused with both states named before libvirt is asked.
    _put_in(host, state)
    if verb in allowed_actions(state):
        if verb == "shutdown":
            # The test driver has no ACPI power button: its refusal proves the guard let the call through.
            with pytest.raises(InvalidInput, match="unsupported flags"):
                lifecycle.shutdown(host, "busy", timeout=5)
        else:
            lifecycle.power(host, "busy", verb)
    else:
        with pytest.raises(StateError) as refused:
            lifecycle.power(host, "busy", verb)
        assert f"it is {state}" in str(refused.value) and refused.value.state == state
        assert current_state(host.lookup("busy")) == state  # nothing changed


def test_list_and_show_carry_allowed_actions(host: Host) -> None:
    assert [(vm.name, vm.allowed_actions) for vm in list_vms(host)] == [("busy", allowed_actions("running"))]
    lifecycle.pause(host, "busy")
    assert show_vm(host, "busy").to_dict()["allowed_actions"] == ["poweroff", "reset", "resume", "delete"]
    assert list_vms(host)[0].allowed_actions == ["poweroff", "reset", "resume", "delete"]


def test_cli_and_api_offer_every_verb_of_the_table() -> None:
    import typer
    import typer.main

    from vmdeck.api.vms import router
    from vmdeck.cli import lifecycle_cmds

    routes = {(route.path, tuple(sorted(route.methods))) for route in router.routes}  # type: ignore[attr-defined]
    staging = typer.Typer()
    lifecycle_cmds.register(staging)
    commands = typer.main.get_group(staging).commands
    for verb in POWER_VERBS.values():
        assert (f"/api/vms/{{name}}/{verb.name}", ("POST",)) in routes
        assert verb.name in commands and commands[verb.name].help == verb.help

"""guest-info against the real tiny guest's agent, and a clear error when a VM has no agent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from itest_support import PREFIX, wait_for

from vmdeck.host.connection import Host
from vmdeck.spec.templates import resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm


def test_guest_info_reports_the_real_hostname_and_addresses(shared_vm: str, cli: Callable,
                                                            run_in_guest: Callable) -> None:
    # Ready does not mean addressed: the guest's DHCP may still be running. Its address first, then ask.
    guest_ipv4 = str(wait_for(lambda: run_in_guest(shared_vm, "ip -4 -o addr show dev eth0").stdout.decode().split()[3]))
    result = cli("guest-info", shared_vm, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["hostname"] == run_in_guest(shared_vm, "hostname").stdout.decode().strip()
    assert info["os"]["id"] == "vmdeck-tiny"  # from the guest's own /etc/os-release
    assert info["os"]["kernel-release"] == run_in_guest(shared_vm, "uname -r").stdout.decode().strip()
    eth0 = next(i for i in info["interfaces"] if i["name"] == "eth0")
    assert eth0["mac"] == run_in_guest(shared_vm, "cat /sys/class/net/eth0/address").stdout.decode().strip()
    assert guest_ipv4 in eth0["addresses"]  # "10.0.2.15/24" from QEMU's user network
    table = cli("guest-info", shared_vm)
    assert info["hostname"] in table.stdout and guest_ipv4 in table.stdout


def test_guest_info_and_exec_without_an_agent_are_guest_errors(host: Host, cli: Callable) -> None:
    name = f"{PREFIX}noagent-{uuid.uuid4().hex[:6]}"
    create_vm(host, resolve("tiny", name).model_copy(update={"guest_agent": False}))
    try:
        lifecycle.start(host, name)  # no need to wait for the boot: there is no channel to talk to
        info = cli("guest-info", name)
        assert info.returncode == 6 and "no guest agent" in info.stderr
        assert len(info.stderr.strip().splitlines()) == 1
        ran = cli("exec", name, "--", "true")
        assert ran.returncode == 6 and "no guest agent" in ran.stderr
    finally:
        lifecycle.delete(host, name, force=True)


def test_exec_that_times_out_is_a_guest_error(shared_vm: str, cli: Callable) -> None:
    result = cli("exec", "--timeout", "1", shared_vm, "--", "sleep", "5")
    assert result.returncode == 6 and "did not finish within 1 s" in result.stderr

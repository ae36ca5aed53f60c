"""A NIC hot-added to a real VM appears in the guest with the MAC vmdeck reported, and goes on removal."""

from __future__ import annotations

import json
from collections.abc import Callable

from itest_support import wait_for


def _macs(run_in_guest: Callable, vm: str) -> list[str]:
    return run_in_guest(vm, "cat /sys/class/net/*/address").stdout.decode().split()


def test_hot_add_and_remove_nic(vm_factory: Callable, run_in_guest: Callable, cli: Callable) -> None:
    vm = vm_factory("tiny")
    added = cli("nic", "add", vm, "--model", "virtio", "--json")
    assert added.returncode == 0, added.stderr
    change = json.loads(added.stdout)
    mac = change["key"]
    assert change["live"] and mac.startswith("52:54:00:")
    assert wait_for(lambda: mac in _macs(run_in_guest, vm))
    assert any(d["key"] == mac and d["status"] == "live" for d in json.loads(cli("show", vm, "--json").stdout)["devices"])

    duplicate = cli("nic", "add", vm, "--mac", mac)
    assert duplicate.returncode == 4 and "already has a NIC" in duplicate.stderr

    removed = cli("nic", "remove", vm, mac.upper())
    assert removed.returncode == 0, removed.stderr
    assert wait_for(lambda: mac not in _macs(run_in_guest, vm))
    assert all(d["key"] != mac for d in json.loads(cli("show", vm, "--json").stdout)["devices"])

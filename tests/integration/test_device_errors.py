"""Bad device requests on a real running VM: one clear line, the right exit code, devices unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from vmdeck.host.connection import Host
from vmdeck.storage.pool import GIB, pool_free_bytes


def _devices(cli: Callable, vm: str) -> list[dict]:
    return json.loads(cli("show", vm, "--json").stdout)["devices"]


def test_bad_requests_fail_cleanly_and_change_nothing(vm_factory: Callable, cli: Callable, host: Host,
                                                      tmp_path: Path, run_in_guest: Callable) -> None:
    vm = vm_factory("tiny")
    before = _devices(cli, vm)
    guest_before = run_in_guest(vm, "ls /sys/block; cat /sys/class/net/*/address").stdout
    too_big = f"{pool_free_bytes(host) / GIB + 50:.0f}"
    cases = [
        (("cdrom", "insert", vm, tmp_path / "missing.iso"), 3, "does not exist"),
        (("cdrom", "insert", vm, tmp_path), 2, "is a directory"),
        (("cdrom", "eject", vm, "--drive", "vda"), 2, "not a CD/DVD drive"),
        (("disk", "remove", vm, "vdq"), 3, "has no disk 'vdq'"),
        (("disk", "add", vm, "--size", "0"), 2, "more than 0 GiB"),
        (("disk", "add", vm, "--size", too_big), 2, "does not fit"),
        (("disk", "resize", vm, "vda", "0.5"), 2, "shrinking"),
        (("nic", "remove", vm, "52:54:00:00:00:00"), 3, "no NIC"),
        (("send-keys", vm, "ctrl-alt-delet"), 2, "unknown key 'delet'"),
        (("type", vm, "caf\u00e9"), 2, "cannot type"),
        (("mouse", vm, "move", "5000", "10"), 2, "outside the 720x400 screen"),
        (("cdrom", "insert", "vmdeck-test-no-such-vm", tmp_path / "x.iso"), 3, "no VM named"),
    ]
    for args, code, message in cases:
        result = cli(*args)
        assert (result.returncode, message in result.stderr) == (code, True), (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
    assert _devices(cli, vm) == before
    assert run_in_guest(vm, "ls /sys/block; cat /sys/class/net/*/address").stdout == guest_before


def test_eject_on_a_vm_without_a_drive(vm_factory: Callable, cli: Callable) -> None:
    vm = vm_factory("tiny", start=False)
    removed = cli("disk", "remove", vm, "sda")  # the tiny template's only CD drive, removed cold
    assert removed.returncode == 0, removed.stderr
    before = _devices(cli, vm)
    result = cli("cdrom", "eject", vm)
    assert result.returncode == 3 and "has no CD/DVD drive" in result.stderr
    assert _devices(cli, vm) == before

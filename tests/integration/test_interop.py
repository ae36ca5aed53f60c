"""vmdeck and virt-install/virt-xml on the same libvirtd: their VMs show up, their edits survive ours."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable

from vmdeck.errors import NotFound
from vmdeck.host.connection import Host
from vmdeck.images.tiny import find_tiny
from vmdeck.vm import lifecycle

URI = ["--connect", "qemu:///system"]


def test_virt_xml_edits_survive_vmdeck_set(vm_factory: Callable, host: Host, cli: Callable,
                                           run_in_guest: Callable) -> None:
    name = vm_factory("tiny", start=False)
    subprocess.run(["virt-xml", *URI, name, "--edit", "--metadata", "description=billing: team-a"],
                   check=True, capture_output=True)
    subprocess.run(["virt-xml", *URI, name, "--add-device", "--watchdog", "model=i6300esb,action=reset"],
                   check=True, capture_output=True)

    changed = cli("set", name, "--cpus", "2", "--memory", "320", "--json")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout) == {"vm": name, "vcpus": 2, "memory_mib": 320, "applies": "now"}
    xml = host.lookup(name).raw.XMLDesc(0)
    assert "billing: team-a" in xml and "i6300esb" in xml and "vmdeck:owned-volume" in xml

    lifecycle.start(host, name, wait=True, timeout=600)
    cpus, mem = run_in_guest(name, "nproc; grep MemTotal /proc/meminfo").stdout.decode().splitlines()
    assert int(cpus) == 2
    assert 240 * 1024 < int(mem.split()[1]) <= 320 * 1024
    # The watchdog virt-xml added is a real PCI device in the guest (Intel 6300ESB: 8086:25ab).
    assert "0x25ab" in run_in_guest(name, "cat /sys/bus/pci/devices/*/device").stdout.decode()

    # On a running VM the change goes to the definition, for the next boot.
    later = cli("set", name, "--cpus", "1")
    assert later.returncode == 0 and "applies at next boot" in later.stdout
    assert int(run_in_guest(name, "nproc").stdout) == 2


def test_set_rejects_bad_values_and_changes_nothing(vm_factory: Callable, host: Host, cli: Callable) -> None:
    name = vm_factory("tiny", start=False)
    before = host.lookup(name).raw.XMLDesc(0)
    for args, message in ((("--cpus", "0"), "vcpus must be between 1"), (("--memory", "9999999"), "memory must be"),
                          ((), "nothing to change")):
        result = cli("set", name, *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert host.lookup(name).raw.XMLDesc(0) == before
    assert cli("set", "no-such-vm", "--cpus", "1").returncode == 3


def test_a_virt_install_vm_shows_up_in_vmdeck(host: Host, cli: Callable) -> None:
    image = find_tiny("x86_64")
    assert image is not None
    name = f"vmdeck-test-{os.getpid()}-virtinst"
    try:
        subprocess.run(
            ["virt-install", *URI, "--name", name, "--memory", "128", "--vcpus", "1", "--osinfo", "generic",
             "--boot", f"kernel={image.kernel},initrd={image.initrd},kernel_args={image.cmdline}",
             "--disk", "none", "--network", "none", "--graphics", "none", "--virt-type", "qemu",
             "--noautoconsole", "--import"],
            check=True, capture_output=True, timeout=120,
        )
        listed = json.loads(cli("list", "--json").stdout)
        assert {"name": name, "state": "running", "vcpus": 1, "memory_mib": 128}.items() <= next(
            vm for vm in listed if vm["name"] == name).items()
        shown = json.loads(cli("show", name, "--json").stdout)
        assert shown["template"] is None and shown["boot_kind"] == "kernel"
        paused = cli("pause", name)
        assert paused.returncode == 0 and json.loads(cli("show", name, "--json").stdout)["state"] == "paused"
        deleted = cli("delete", name, "--force")
        assert deleted.returncode == 0, deleted.stderr
        assert not host.exists(name)
    finally:
        with contextlib.suppress(NotFound):
            lifecycle.delete(host, name, force=True)

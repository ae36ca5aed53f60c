"""The core lifecycle against real libvirtd + QEMU (TCG) and the tiny guest; effects read inside the guest."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from itest_support import READY_TIMEOUT_S, wait_for

from vmdeck.domxml.parse import parse_domain
from vmdeck.host.connection import Host
from vmdeck.vm import lifecycle
from vmdeck.vm.inventory import show_vm

BOOT_ID = "cat /proc/sys/kernel/random/boot_id"


def test_guest_sees_the_vcpus_and_memory_of_the_spec(shared_vm: str, run_in_guest: Callable) -> None:
    result = run_in_guest(shared_vm, "nproc; grep MemTotal /proc/meminfo")
    cpus, meminfo = result.stdout.decode().splitlines()
    assert int(cpus) == 2
    mem_kib = int(meminfo.split()[1])
    # MemTotal is RAM minus what the kernel reserves for itself: within 256 MiB, above 180.
    assert 180 * 1024 < mem_kib <= 256 * 1024


def test_auto_accel_matches_the_host_probe(shared_vm: str, host: Host, cli: Callable) -> None:
    check = json.loads(cli("host", "check", "--json").stdout)
    view = show_vm(host, shared_vm).view
    assert view.domain_type == ("kvm" if check["kvm_usable"] else "qemu")
    assert view.accel_requested == "auto" and view.accel_reason


def test_exec_returns_output_and_exit_status(shared_vm: str, cli: Callable) -> None:
    result = cli("exec", shared_vm, "--", "/bin/sh", "-c", "echo out-$((6*7)); echo err-text >&2; exit 7")
    assert result.returncode == 7
    assert result.stdout == "out-42\n"
    assert "err-text" in result.stderr


def test_reboot_then_acpi_shutdown(vm_factory: Callable, host: Host, run_in_guest: Callable) -> None:
    name = vm_factory("tiny")
    first_boot = run_in_guest(name, BOOT_ID).stdout.strip()
    lifecycle.reboot(host, name)

    def booted_again() -> bool:
        # The agent answers again only once the new boot is up; its boot id is new.
        return run_in_guest(name, BOOT_ID, timeout=5).stdout.strip() not in (b"", first_boot)

    wait_for(booted_again, timeout=READY_TIMEOUT_S)
    assert show_vm(host, name).state == "running"
    # An upper bound: the guest powers off within seconds when idle, far later on a loaded machine.
    how = lifecycle.shutdown(host, name, timeout=300)
    assert how == "shut down by the guest"
    assert show_vm(host, name).state == "shut off"


def test_delete_removes_vm_and_its_disk_file(vm_factory: Callable, host: Host, cli: Callable) -> None:
    name = vm_factory("tiny", start=False)
    disk = Path(parse_domain(host.lookup(name).raw.XMLDesc(0)).owned_volumes[0])
    assert disk.exists()
    result = cli("delete", name)
    assert result.returncode == 0, result.stderr
    assert not disk.exists()
    assert not host.exists(name)


def test_aarch64_guest_reports_aarch64(vm_factory: Callable, run_in_guest: Callable, host: Host) -> None:
    name = vm_factory("tiny-arm64")
    assert run_in_guest(name, "uname -m").stdout.decode().strip() == "aarch64"
    assert show_vm(host, name).view.domain_type == "qemu"


def test_legacy_pc_guest_sees_ide_devices(vm_factory: Callable, run_in_guest: Callable) -> None:
    # legacy-pc boots from firmware; to see its IDE bus from a Linux guest, boot the tiny kernel on it.
    templates = Path(os.environ["VMDECK_CONFIG_DIR"]) / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "legacy-tiny.yaml").write_text(
        "extends: legacy-pc\nboot: {kind: kernel, image: tiny}\nmemory_mib: 256\nguest_agent: true\n"
        "disks: [{bus: ide, size_gib: 1}]\n"
    )
    name = vm_factory("legacy-tiny")
    out = run_in_guest(name, "for d in /sys/block/sd* /sys/block/sr*; do readlink -f $d; done").stdout.decode()
    paths = out.split()
    # libata (ata_piix) drives the i440FX's PIIX IDE controller: disk and CD-ROM hang off ata ports.
    assert any("/ata" in p and p.endswith("/sda") for p in paths), out
    assert any("/ata" in p and p.endswith("/sr0") for p in paths), out

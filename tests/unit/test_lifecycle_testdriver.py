"""Lifecycle verbs and their state guards on libvirt's test driver (its own node per test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testdriver import open_test_host
from vmdeck.errors import Conflict, InvalidInput, NotFound, StateError
from vmdeck.host.connection import Host
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm
from vmdeck.vm.inventory import list_vms, show_vm


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return open_test_host(tmp_path)


def test_create_defines_vm_with_owned_volume(host: Host) -> None:
    view = create_vm(host, resolve("q35-virtio", "web1", Overrides(vcpus=2, disk_gib=3)))
    assert view.owned_volumes and view.owned_volumes[0].endswith("web1-vda.qcow2")
    capacity = host.conn.raw.storageVolLookupByPath(view.owned_volumes[0]).info()[1]
    assert capacity == 3 * 1024**3
    assert show_vm(host, "web1").state == "shut off"


def test_duplicate_name_is_a_conflict(host: Host) -> None:
    create_vm(host, resolve("q35-virtio", "web1"))
    with pytest.raises(Conflict, match="already exists"):
        create_vm(host, resolve("q35-virtio", "web1"))


def test_memory_beyond_the_host_is_invalid(host: Host) -> None:
    with pytest.raises(InvalidInput, match="more than this host has"):
        create_vm(host, resolve("q35-virtio", "huge", Overrides(memory_mib=64 * 1024)))
    assert not host.exists("huge")


def test_missing_iso_is_not_found_and_nothing_is_left(host: Host, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        create_vm(host, resolve("q35-virtio", "inst", Overrides(cdrom=tmp_path / "nope.iso")))
    assert not host.exists("inst")
    assert host.conn.raw.storagePoolLookupByName("vmdeck").listVolumes() == []


def test_directory_as_iso_is_invalid(host: Host, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is a directory"):
        create_vm(host, resolve("q35-virtio", "inst", Overrides(cdrom=tmp_path)))


def test_state_guards(host: Host) -> None:
    create_vm(host, resolve("q35-virtio", "web1"))
    with pytest.raises(StateError, match="it is shut off, it must be"):
        lifecycle.pause(host, "web1")
    lifecycle.start(host, "web1")
    with pytest.raises(StateError, match="cannot start VM 'web1': it is running"):
        lifecycle.start(host, "web1")
    lifecycle.pause(host, "web1")
    assert show_vm(host, "web1").state == "paused"
    lifecycle.resume(host, "web1")
    with pytest.raises(StateError, match="use --force"):
        lifecycle.delete(host, "web1")
    assert host.exists("web1")


def test_delete_removes_only_owned_volumes(host: Host, tmp_path: Path) -> None:
    view = create_vm(host, resolve("q35-virtio", "web1"))
    pool = host.conn.raw.storagePoolLookupByName("vmdeck")
    user_volume = pool.createXML(
        "<volume><name>mine.qcow2</name><capacity>1048576</capacity><target><format type='qcow2'/></target></volume>", 0)
    lifecycle.start(host, "web1")
    removed = lifecycle.delete(host, "web1", force=True)
    assert removed == list(view.owned_volumes)
    assert not host.exists("web1")
    assert pool.listVolumes() == ["mine.qcow2"]
    assert user_volume.name() == "mine.qcow2"


def test_delete_keep_disks(host: Host) -> None:
    create_vm(host, resolve("q35-virtio", "web1"))
    assert lifecycle.delete(host, "web1", keep_disks=True) == []
    assert host.conn.raw.storagePoolLookupByName("vmdeck").listVolumes() == ["web1-vda.qcow2"]


def test_list_uses_bulk_calls(host: Host) -> None:
    for index in range(3):
        create_vm(host, resolve("q35-virtio", f"vm{index}", Overrides(vcpus=index + 1)))
    lifecycle.start(host, "vm1")
    vms = {vm.name: vm for vm in list_vms(host)}
    assert {"vm0", "vm1", "vm2", "busy"} <= set(vms)
    assert vms["vm1"].state == "running" and vms["vm0"].state == "shut off"
    assert vms["vm2"].vcpus == 3


def test_unknown_vm_is_not_found(host: Host) -> None:
    with pytest.raises(NotFound, match="no VM named 'ghost'"):
        lifecycle.start(host, "ghost")


def test_list_tells_transient_from_persistent(host: Host) -> None:
    create_vm(host, resolve("q35-virtio", "kept"))
    host.conn.raw.createXML("<domain type='test'><name>passing</name><memory unit='MiB'>64</memory>"
                        "<os><type arch='x86_64'>hvm</type></os></domain>", 0)
    persistent = {vm.name: vm.persistent for vm in list_vms(host)}
    assert persistent["kept"] is True and persistent["passing"] is False

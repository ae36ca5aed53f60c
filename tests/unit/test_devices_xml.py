"""Device lookup and editing in domain XML (pure), and device requests refused on libvirt's test driver.

libvirt 9.0's test driver has no virDomainAttachDeviceFlags/UpdateDeviceFlags, so the
changes themselves are proven against real libvirtd in tests/integration; here the
test driver proves that refused requests change nothing and leave no volume behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from testdriver import open_test_host
from vmdeck.domxml import devices as dx
from vmdeck.errors import Conflict, InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.spec.templates import resolve
from vmdeck.storage.iso import make_iso, volume_label
from vmdeck.vm import devices, media
from vmdeck.vm.create import create_vm
from vmdeck.vm.media import choose_cdrom_bus

LIVE = """<domain type='qemu'><name>v</name><devices>
  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/p/v-vda.qcow2' index='2'/>
    <backingStore/><target dev='vda' bus='virtio'/><alias name='virtio-disk0'/>
    <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></disk>
  <disk type='file' device='cdrom'><driver name='qemu'/><target dev='sda' bus='scsi'/><readonly/>
    <alias name='scsi0-0-0-0'/></disk>
  <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/p/gone.img'/>
    <target dev='vdc' bus='virtio'/></disk>
  <controller type='scsi' index='0' model='virtio-scsi'/>
  <controller type='pci' index='0' model='pcie-root'/>
  <controller type='pci' index='1' model='pcie-root-port'/>
  <controller type='pci' index='4' model='pcie-root-port'/>
  <controller type='pci' index='5' model='pcie-root-port'/>
  <interface type='user'><mac address='52:54:00:AA:bb:cc'/><model type='virtio'/>
    <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>
</devices></domain>"""

def _config() -> str:
    # The configuration: vdc was removed (pending removal), a SATA disk sdb was added (pending add).
    root = etree.fromstring(LIVE.encode())
    devs = root.find("devices")
    for disk in devs.findall("disk"):
        if disk.find("target").get("dev") == "vdc":
            devs.remove(disk)
    devs.append(etree.fromstring("<disk type='file' device='disk'><source file='/p/new.qcow2'/>"
                                 "<target dev='sdb' bus='sata'/></disk>"))
    return etree.tostring(root, encoding="unicode")


def test_find_disk_and_nic() -> None:
    disk = dx.find_disk(LIVE, "vda")
    assert disk is not None and "virtio-disk0" in disk and disk.startswith("<disk")
    assert dx.find_disk(LIVE, "vdz") is None
    nic = dx.find_nic(LIVE, "52:54:00:aa:BB:CC")  # MACs match in any case
    assert nic is not None and "<model type=\"virtio\"/>" in nic.replace("'", '"')
    assert dx.find_nic(LIVE, "52:54:00:00:00:01") is None
    assert dx.disk_targets(LIVE) == ["vda", "sda", "vdc"]
    assert dx.macs(LIVE) == ["52:54:00:aa:bb:cc"]


def test_with_media_inserts_and_ejects_keeping_the_rest() -> None:
    empty = dx.find_disk(LIVE, "sda")
    inserted = etree.fromstring(dx.with_media(empty, "/isos/a.iso").encode())
    assert inserted.find("source").get("file") == "/isos/a.iso"
    assert [c.tag for c in inserted][:2] == ["driver", "source"]  # <source> right after <driver>
    assert inserted.find("driver").get("type") == "raw"
    assert inserted.find("alias").get("name") == "scsi0-0-0-0"
    assert inserted.find("readonly") is not None
    ejected = etree.fromstring(dx.with_media(etree.tostring(inserted, encoding="unicode"), None).encode())
    assert ejected.find("source") is None and ejected.find("target").get("dev") == "sda"


def test_free_root_ports_and_topping_up() -> None:
    # Ports 1 (the NIC) and 4 (vda) are taken; 5 is free.
    assert dx.free_root_ports(LIVE) == 1
    more = dx.add_root_ports(LIVE, 3)
    assert len(etree.fromstring(more.encode()).findall("devices/controller[@model='pcie-root-port']")) == 6


def test_scsi_controller_and_cdrom_bus_choice() -> None:
    assert dx.has_scsi_controller(LIVE)
    plain = LIVE.replace("model='virtio-scsi'", "model='lsilogic'")
    assert not dx.has_scsi_controller(plain)
    assert choose_cdrom_bus("q35", LIVE) == "scsi"
    assert choose_cdrom_bus("q35", plain) == "sata"
    assert choose_cdrom_bus("pc", plain) == "ide"


def test_device_rows_mark_pending_changes() -> None:
    rows = {(r.kind, r.key): r.status for r in dx.device_rows(_config(), LIVE)}
    assert rows == {
        ("disk", "vda"): "live",
        ("cdrom", "sda"): "live",
        ("disk", "vdc"): "pending removal",
        ("disk", "sdb"): "pending add",
        ("nic", "52:54:00:aa:bb:cc"): "live",
    }
    assert {r.status for r in dx.device_rows(_config(), None)} == {"config"}


def test_random_mac_is_unicast_local_and_new() -> None:
    taken = ["52:54:00:00:00:01"]
    for _ in range(50):
        mac = dx.random_mac(taken)
        assert mac.startswith("52:54:00:") and mac not in taken


def test_iso_volume_label() -> None:
    assert volume_label(Path("/x/my files-2")) == "MY_FILES_2"
    assert len(volume_label(Path("/x/" + "a" * 50))) == 32


def test_make_iso_refuses_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        make_iso(tmp_path / "nope", tmp_path / "a.iso")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="not a folder"):
        make_iso(tmp_path / "file", tmp_path / "a.iso")
    folder = tmp_path / "d"
    folder.mkdir()
    with pytest.raises(InvalidInput, match="inside the folder"):
        make_iso(folder, folder / "a.iso")
    with pytest.raises(InvalidInput, match="is a directory"):
        make_iso(folder, tmp_path)


def test_make_iso_writes_an_iso9660_image(tmp_path: Path) -> None:
    folder = tmp_path / "payload"
    folder.mkdir()
    (folder / "hello.txt").write_text("hello\n")
    iso = make_iso(folder, tmp_path / "out.iso")
    data = iso.read_bytes()
    # The primary volume descriptor at sector 16: type 1, "CD001", then the volume ID at byte 40.
    assert data[16 * 2048:16 * 2048 + 6] == b"\x01CD001"
    assert data[16 * 2048 + 40:16 * 2048 + 72].rstrip() == b"PAYLOAD"
    assert b"hello\n" in data
    assert not list(tmp_path.glob(".*.partial"))


# -- refused requests on the test driver --------------------------------------------------------


@pytest.fixture
def host(tmp_path: Path) -> Host:
    h = open_test_host(tmp_path)
    create_vm(h, resolve("q35-virtio", "web1"))
    return h


def _snapshot(host: Host) -> tuple[str, list[str]]:
    dom = host.lookup("web1")
    return dom.raw.XMLDesc(0), sorted(host.conn.raw.storagePoolLookupByName("vmdeck").listVolumes())


@pytest.mark.parametrize(
    ("request_", "error", "match"),
    [
        (lambda h: devices.add_disk(h, "web1", 0), InvalidInput, "more than 0"),
        (lambda h: devices.add_disk(h, "web1", 500), InvalidInput, "does not fit"),
        (lambda h: devices.add_disk(h, "web1", 1, bus="ide"), InvalidInput, "does not exist on machine 'q35'"),
        (lambda h: devices.remove_disk(h, "web1", "vdz"), NotFound, "no disk 'vdz'"),
        (lambda h: devices.resize_disk(h, "web1", "vda", 1), InvalidInput, "shrinking"),
        (lambda h: devices.resize_disk(h, "web1", "sda", 4), InvalidInput, "is a cdrom"),
        (lambda h: devices.add_nic(h, "web1", model="ne2k"), InvalidInput, "unknown NIC model"),
        (lambda h: devices.add_nic(h, "web1", mac="01:00:00:00:00:01"), InvalidInput, "multicast"),
        (lambda h: devices.add_nic(h, "web1", network="nosuchnet"), NotFound, "no libvirt network"),
        (lambda h: devices.remove_nic(h, "web1", "52:54:00:00:00:09"), NotFound, "no NIC"),
        (lambda h: media.eject(h, "web1", drive="vda"), InvalidInput, "is a disk, not a CD/DVD"),
        (lambda h: media.eject(h, "web1", drive="sdq"), NotFound, "no CD/DVD drive 'sdq'"),
        (lambda h: media.insert(h, "web1", "/nonexistent.iso"), NotFound, "does not exist"),
        (lambda h: media.insert(h, "web1", "/"), InvalidInput, "is a directory"),
        (lambda h: media.add_drive(h, "web1", bus="ide"), InvalidInput, "cannot go on bus 'ide'"),
    ],
)
def test_refused_requests_change_nothing(host: Host, request_, error, match) -> None:  # type: ignore[no-untyped-def]
    before = _snapshot(host)
    with pytest.raises(error, match=match):
        request_(host)
    assert _snapshot(host) == before


def test_remove_with_delete_volume_refuses_an_image_vmdeck_does_not_own(host: Host, tmp_path: Path) -> None:
    dom = host.lookup("web1")
    image = tmp_path / "mine.img"
    image.write_bytes(b"\0" * 1024)
    xml = dom.raw.XMLDesc(0).replace(
        "</devices>", f"<disk type='file' device='disk'><source file='{image}'/><target dev='vdb' bus='virtio'/>"
                      "</disk></devices>")
    host.conn.raw.defineXML(xml)
    before = _snapshot(host)
    with pytest.raises(InvalidInput, match="never deletes it"):
        devices.remove_disk(host, "web1", "vdb", delete_volume_too=True)
    assert _snapshot(host) == before and image.exists()


def test_a_failed_attach_leaves_no_volume_behind(host: Host) -> None:
    # The test driver cannot attach devices at all: the new volume must be rolled back.
    before = _snapshot(host)
    with pytest.raises(VmdeckError, match="not supported"):
        devices.add_disk(host, "web1", 2)
    assert _snapshot(host) == before


def test_eject_without_a_drive_is_not_found(tmp_path: Path) -> None:
    h = open_test_host(tmp_path)
    create_vm(h, resolve("q35-virtio", "nodrive").model_copy(update={"cdroms": ()}))
    with pytest.raises(NotFound, match="has no CD/DVD drive"):
        media.eject(h, "nodrive")


def test_device_table_of_a_shut_off_vm(host: Host) -> None:
    rows = devices.device_table(host, "web1")
    assert {(r.kind, r.key) for r in rows if r.kind != "nic"} == {("disk", "vda"), ("cdrom", "sda")}
    assert {r.status for r in rows} == {"config"}


def test_media_used_writable_by_another_running_vm_is_refused(host: Host, tmp_path: Path) -> None:
    image = tmp_path / "shared.iso"
    image.write_bytes(b"\0" * 4096)
    create_vm(host, resolve("q35-virtio", "writer"))
    writer = host.lookup("writer")
    host.conn.raw.defineXML(writer.raw.XMLDesc(0).replace(
        "</devices>", f"<disk type='file' device='disk'><source file='{image}'/><target dev='vdb' bus='virtio'/>"
                      "</disk></devices>"))
    host.lookup("writer").raw.create()
    before = _snapshot(host)
    with pytest.raises(Conflict, match="attached writable to running VM 'writer'"):
        media.insert(host, "web1", image)
    assert _snapshot(host) == before

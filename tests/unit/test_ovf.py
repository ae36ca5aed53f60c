"""OVF descriptors (VMware's and VirtualBox's dialects) read into import plans; units, hrefs and manifests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from vmdeck.errors import InvalidInput
from vmdeck.images.ovf import allocation_units, check_href, open_package_file, parse_manifest, plan_from_ovf, verify_manifest

DATA = Path(__file__).parent / "data" / "ovf"


def _ovf(body_items: str, *, extra: str = "", os_section: str = "") -> bytes:
    return f"""<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
 xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
 <References><File ovf:href="d.vmdk" ovf:id="f1"/></References>
 <DiskSection><Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="d1" ovf:fileRef="f1"/>
 </DiskSection>
 {extra}
 <VirtualSystem ovf:id="vm1">{os_section}<VirtualHardwareSection>
  <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>
   <rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
  <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType>
   <rasd:HostResource>ovf:/disk/d1</rasd:HostResource></Item>
  {body_items}
 </VirtualHardwareSection></VirtualSystem></Envelope>""".encode()


def _memory(quantity: str, units: str) -> str:
    return (f"<Item><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType>"
            f"<rasd:AllocationUnits>{units}</rasd:AllocationUnits>"
            f"<rasd:VirtualQuantity>{quantity}</rasd:VirtualQuantity></Item>")


def test_vmware_dialect() -> None:
    plan = plan_from_ovf((DATA / "vmware.ovf").read_bytes())
    assert plan.name == "web01"
    assert (plan.vcpus, plan.memory_mib) == (4, 3072)
    assert [(d.href, d.capacity_bytes, d.bus) for d in plan.disks] == [
        ("web01-disk1.vmdk", 16 * 2**30, "scsi"), ("web01-disk2.vmdk", 512 * 2**20, "sata")]
    assert plan.disks[0].controller == "SCSI VMware Paravirtual"
    assert plan.disks[0].format.endswith("#streamOptimized")
    assert [(n.model, n.ovf_model) for n in plan.nics] == [("virtio", "VmxNet3")]
    assert plan.firmware == "uefi"
    assert plan.template == "q35-virtio"
    assert plan.os == "Debian GNU/Linux 10 (64-bit)"
    notes = "\n".join(plan.not_honoured)
    # Everything dropped is said: topology, the VMware NIC, the network, Secure Boot, the CD drive, the video card.
    assert plan.secure_boot
    for words in ("2 cores per socket", "VmxNet3", "'VM Network'", "CD/DVD drive 1", "Video card"):
        assert words in notes


def test_virtualbox_dialect() -> None:
    plan = plan_from_ovf((DATA / "virtualbox.ovf").read_bytes())
    assert plan.name == "winxp"  # no <Name>: the system's id
    assert (plan.vcpus, plan.memory_mib) == (1, 512)
    assert [(d.href, d.capacity_bytes, d.bus, d.controller) for d in plan.disks] == [
        ("winxp-disk001.vmdk", 10240 * 2**20, "ide", "IDE")]
    assert [n.model for n in plan.nics] == ["e1000"]
    assert plan.firmware == "bios"
    assert plan.template == "legacy-pc"  # Windows XP
    assert any("sound" in note for note in plan.not_honoured)
    assert any("PCNet32" in note for note in plan.not_honoured)


def test_virtualbox_efi_firmware() -> None:
    data = (DATA / "virtualbox.ovf").read_bytes().replace(b'<Firmware type="BIOS"/>', b'<Firmware type="EFI64"/>')
    assert plan_from_ovf(data).firmware == "uefi"


@pytest.mark.parametrize(("units", "factor"), [
    ("byte", 1), ("byte * 2^10", 1024), ("byte * 2^20", 2**20), ("byte*2^30", 2**30), ("byte * 10^6", 10**6),
    ("MegaBytes", 2**20), ("KiloBytes", 1024), ("GigaBytes", 2**30), ("MB", 2**20), ("GB", 2**30),
    ("byte * 2^10 * 2^10", 2**20),
])
def test_allocation_units(units: str, factor: int) -> None:
    assert allocation_units(units) == factor


@pytest.mark.parametrize("units", ["hertz * 10^6", "furlongs", "byte * 2^", "byte ** 2"])
def test_unknown_units_are_refused(units: str) -> None:
    with pytest.raises(InvalidInput, match="allocation unit"):
        allocation_units(units)


@pytest.mark.parametrize(("quantity", "units", "mib"), [
    ("1", "byte * 2^30", 1024), ("524288", "byte * 2^10", 512), ("300", "MegaBytes", 300),
    ("1000000000", "byte", 954),  # rounded up to whole MiB
])
def test_memory_units(quantity: str, units: str, mib: int) -> None:
    assert plan_from_ovf(_ovf(_memory(quantity, units))).memory_mib == mib


@pytest.mark.parametrize("os_section, template", [
    ('<OperatingSystemSection ovf:id="14"><Description>MS-DOS</Description></OperatingSystemSection>', "legacy-pc"),
    ('<OperatingSystemSection ovf:id="1" xmlns:vmw="http://www.vmware.com/schema/ovf" vmw:osType="win98Guest"/>',
     "legacy-pc"),
    ('<OperatingSystemSection ovf:id="103"/>', "windows"),
    ('<OperatingSystemSection ovf:id="101"/>', "q35-virtio"),
    ("", "q35-virtio"),
])
def test_os_section_chooses_template(os_section: str, template: str) -> None:
    assert plan_from_ovf(_ovf(_memory("256", "MegaBytes"), os_section=os_section)).template == template


def test_disk_without_controller_is_virtio() -> None:
    assert plan_from_ovf(_ovf(_memory("256", "MegaBytes"))).disks[0].bus == "virtio"


@pytest.mark.parametrize("data, message", [
    (b"<not-ovf/>", "not an OVF descriptor"),
    (b"<Envelope", "not valid XML"),
    (_ovf(""), "no memory size"),
    (_ovf(_memory("0", "MegaBytes")), "no valid VirtualQuantity"),
    (_ovf(_memory("256", "MegaBytes")).replace(b"ovf:/disk/d1", b"ovf:/disk/nope"), "DiskSection does not have"),
    (_ovf(_memory("256", "MegaBytes")).replace(b'ovf:href="d.vmdk"', b'ovf:href="../x.vmdk"'), "plain file names"),
    (_ovf(_memory("256", "MegaBytes")).replace(b'ovf:href="d.vmdk"', b'ovf:href="/etc/shadow"'), "plain file names"),
    (_ovf(_memory("256", "MegaBytes")).replace(b'ovf:id="f1"', b'ovf:id="f1" ovf:compression="gzip"'),
     "gzip-compressed"),
    (_ovf(_memory("256", "MegaBytes")).replace(b'ovf:id="f1"', b'ovf:id="f1" ovf:chunkSize="1000"'), "in chunks"),
    (_ovf(_memory("256", "MegaBytes")).replace(b'ovf:href="d.vmdk"', b'ovf:href="http://x/d.vmdk"'),
     "plain file names"),
])
def test_bad_descriptors(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        plan_from_ovf(data)


def test_entities_are_not_expanded(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("top-secret")
    data = _ovf(_memory("256", "MegaBytes")).replace(b'<?xml version="1.0"?>', (
        f'<?xml version="1.0"?><!DOCTYPE Envelope [<!ENTITY x SYSTEM "file://{secret}">]>').encode())
    data = data.replace(b'ovf:id="vm1">', b'ovf:id="vm1"><Name>&x;</Name>')
    assert "top-secret" not in plan_from_ovf(data).name


@pytest.mark.parametrize("href", ["a/b.vmdk", "../x.vmdk", "/abs.vmdk", "..", "", "C:\\x.vmdk"])
def test_check_href_refuses_paths(href: str) -> None:
    with pytest.raises(InvalidInput):
        check_href(href)


def test_manifest_verification(tmp_path: Path) -> None:
    (tmp_path / "a.ovf").write_bytes(b"descriptor")
    (tmp_path / "d.vmdk").write_bytes(b"disk bytes")
    manifest = parse_manifest(f"SHA1(a.ovf)= {hashlib.sha1(b'descriptor').hexdigest()}\n"
                              f"SHA256(d.vmdk) = {hashlib.sha256(b'disk bytes').hexdigest().upper()}\n")
    verify_manifest(tmp_path, manifest, ["a.ovf", "d.vmdk"])
    (tmp_path / "d.vmdk").write_bytes(b"disk bytez")
    with pytest.raises(InvalidInput, match="d.vmdk does not match the manifest's SHA256"):
        verify_manifest(tmp_path, manifest, ["a.ovf", "d.vmdk"])
    with pytest.raises(InvalidInput, match="not `SHA256"):
        parse_manifest("MD5(a.ovf)= 00")
    with pytest.raises(InvalidInput, match="plain file names"):
        parse_manifest("SHA1(../a.ovf)= 00")


def test_symlinked_package_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"x")
    os.symlink(tmp_path / "real", tmp_path / "d.vmdk")
    with pytest.raises(InvalidInput, match="symbolic link"):
        open_package_file(tmp_path, "d.vmdk")
    (tmp_path / "dir.vmdk").mkdir()
    with pytest.raises(InvalidInput, match="not a regular file"):
        open_package_file(tmp_path, "dir.vmdk")

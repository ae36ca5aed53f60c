"""Import plans from real (tiny) packages: template, firmware, Secure Boot, buses fitted to the machine,
overrides, and the refusals that come before anything is written. qemu-img reads the disks."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from vmdeck.errors import InvalidInput
from vmdeck.vm.importer import ImportOptions, plan_import, vm_name_from

sys.path.insert(0, str(Path(__file__).parent.parent))
from ovabuild import build_ova, vmware_ovf  # noqa: E402


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "disk.img"
    path.write_bytes(b"\0" * (4 << 20))
    return path


def _ova_with(tmp_path: Path, raw: Path, ovf_text: str) -> Path:
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw,
                    tmp_path / "d.vmdk"], check=True)
    (tmp_path / "x.ovf").write_text(ovf_text)
    ova = tmp_path / "x.ova"
    with tarfile.open(ova, "w") as archive:
        archive.add(tmp_path / "x.ovf", arcname="x.ovf")
        archive.add(tmp_path / "d.vmdk", arcname="d.vmdk")
    return ova


def test_plan_from_a_vmware_ova(tmp_path: Path, raw: Path) -> None:
    plan = plan_import(build_ova(tmp_path, raw, "web01", vcpus=3, memory_mib=768))
    assert (plan.spec.name, plan.spec.vcpus, plan.spec.memory_mib, plan.spec.template) == ("web01", 3, 768, "q35-virtio")
    assert [(d.bus, d.target, d.capacity, d.format) for d in plan.disks] == [("scsi", "sda", 4 << 20, "vmdk")]
    assert plan.demand_numbers() == {"instances": 1, "vcpus": 3, "memory_mib": 768, "disk_gib": 0.004}
    assert [n.model for n in plan.spec.nics] == ["e1000"]
    assert plan.spec.boot.kind == "bios" and not plan.spec.tpm


def test_windows_efi_secure_boot(tmp_path: Path, raw: Path) -> None:
    text = vmware_ovf("win", 2, 4096, "d.vmdk", 4, controller=20, efi=True).replace(
        'ovf:id="101" vmw:osType="other4xLinux64Guest"', 'ovf:id="116" vmw:osType="windows9_64Guest"')
    plan = plan_import(_ova_with(tmp_path, raw, text))
    spec = plan.spec
    assert (spec.template, spec.boot.kind, spec.secure_boot, spec.tpm, spec.hyperv) == ("windows", "uefi", True, True,
                                                                                       True)
    assert plan.disks[0].bus == "sata"
    assert len(spec.cdroms) == 2  # the windows template's drivers CD stays


def test_windows_with_bios_drops_secure_boot_and_says_so(tmp_path: Path, raw: Path) -> None:
    text = vmware_ovf("win", 2, 4096, "d.vmdk", 4).replace('ovf:id="101"', 'ovf:id="105"')
    plan = plan_import(_ova_with(tmp_path, raw, text))
    assert plan.spec.boot.kind == "bios" and not plan.spec.secure_boot
    assert any("Secure Boot" in note for note in plan.not_honoured)


def test_legacy_ide_and_q35_bus_fitting(tmp_path: Path, raw: Path) -> None:
    text = vmware_ovf("dos", 1, 32, "d.vmdk", 4, controller=5).replace('ovf:id="101"', 'ovf:id="14"')
    ova = _ova_with(tmp_path, raw, text)
    legacy = plan_import(ova)
    assert (legacy.spec.template, legacy.spec.machine, legacy.disks[0].bus) == ("legacy-pc", "pc", "ide")
    on_q35 = plan_import(ova, ImportOptions(template="q35-virtio", name="dos2"))
    assert on_q35.disks[0].bus == "sata" and on_q35.spec.name == "dos2"
    assert any("no IDE bus" in note for note in on_q35.not_honoured)
    forced = plan_import(ova, ImportOptions(template="q35-virtio", disk_bus="virtio", nic_model="virtio",
                                            firmware="uefi"))
    assert (forced.disks[0].bus, forced.spec.nics[0].model, forced.spec.boot.kind) == ("virtio", "virtio", "uefi")


def test_bare_disk_plans_on_the_template(tmp_path: Path, raw: Path) -> None:
    image = tmp_path / "My Old Server.vhdx"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", raw, image], check=True)
    plan = plan_import(image)
    assert plan.spec.name == "My-Old-Server" and plan.kind == "disk"
    assert plan.disks[0].format == "vhdx" and plan.disks[0].capacity == 4 << 20


def test_refusals_before_anything_is_written(tmp_path: Path, raw: Path) -> None:
    backed = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-F", "raw", "-b", str(raw), backed], check=True,
                   capture_output=True)
    with pytest.raises(InvalidInput, match="backing file"):
        plan_import(backed)
    posing = tmp_path / "posing.img"  # a qcow2 named .img is read as raw: its backing file is never followed
    posing.write_bytes(backed.read_bytes())
    assert plan_import(posing).disks[0].format == "raw"
    link = tmp_path / "link.ova"
    with tarfile.open(link, "w") as archive:
        info = tarfile.TarInfo("x.ovf")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)
    with pytest.raises(InvalidInput, match="is a link"):
        plan_import(link)
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"")
    with pytest.raises(InvalidInput, match="vmdeck imports"):
        plan_import(iso)


@pytest.mark.parametrize(("text", "name"), [("Web Server (old)", "Web-Server-old"), ("///", "imported"),
                                            ("a" * 80, "a" * 63)])
def test_vm_names_from_sources(text: str, name: str) -> None:
    assert vm_name_from(text) == name


def test_ovf_with_a_split_vmdk_beside_it(tmp_path: Path, raw: Path) -> None:
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", raw,
                    tmp_path / "app-disk1.vmdk"], check=True)
    ovf = tmp_path / "app.ovf"
    ovf.write_text(vmware_ovf("app", 1, 256, "app-disk1.vmdk", 4))
    plan = plan_import(ovf)
    assert plan.kind == "ovf" and plan.disks[0].source == str(tmp_path / "app-disk1.vmdk")
    # An extent that is a symlink (to anywhere on the host) is refused before QEMU reads it.
    extent = tmp_path / "app-disk1-s001.vmdk"
    extent.rename(tmp_path / "elsewhere.vmdk")
    extent.symlink_to(tmp_path / "elsewhere.vmdk")
    with pytest.raises(InvalidInput, match="extent"):
        plan_import(ovf)


def test_vmdk_descriptor_naming_a_host_file_is_refused_before_qemu_opens_it(tmp_path: Path) -> None:
    descriptor = tmp_path / "evil.vmdk"
    descriptor.write_text('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                          'createType="monolithicFlat"\n\n# Extent description\nRW 2048 FLAT "/etc/shadow" 0\n')
    with pytest.raises(InvalidInput, match="'/etc/shadow' that is not a plain file beside it"):
        plan_import(descriptor)


def test_ova_holding_a_vmdk_descriptor_is_refused(tmp_path: Path) -> None:
    descriptor = tmp_path / "d.vmdk"
    descriptor.write_text('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'
                          'RW 2048 FLAT "/etc/shadow" 0\n')
    (tmp_path / "x.ovf").write_text(vmware_ovf("x", 1, 128, "d.vmdk", 1))
    ova = tmp_path / "x.ova"
    with tarfile.open(ova, "w") as archive:
        archive.add(tmp_path / "x.ovf", arcname="x.ovf")
        archive.add(descriptor, arcname="d.vmdk")
    with pytest.raises(InvalidInput, match="VMDK descriptor with extents in other files"):
        plan_import(ova)

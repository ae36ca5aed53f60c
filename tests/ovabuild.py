# ruff: noqa: E501  (OVF descriptors kept one element per line, as the tools write them)
"""Build OVA packages the way VMware's ovftool and VirtualBox write them, for import tests and the benchmark.

`build_ova(folder, disk_image, ...)` converts a raw image to a streamOptimized VMDK with
qemu-img, writes an OVF in the chosen dialect and a SHA256 manifest, and tars them in
the order OVF 1.x asks (descriptor first, then the manifest, then the disks).
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path

__all__ = ["vmware_ovf", "virtualbox_ovf", "build_ova", "manifest_line"]


def vmware_ovf(name: str, vcpus: int, memory_mib: int, disk_href: str, capacity_mib: int, *,
               controller: int = 6, efi: bool = False, nic: str = "E1000") -> str:
    firmware = '<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>' if efi else ""
    sub = {6: "lsilogic", 20: "vmware.sata.ahci", 5: "PIIX4"}[controller]
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-18663434" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:href="{disk_href}" ovf:id="file1"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity_mib}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection><Info>networks</Info><Network ovf:name="VM Network"><Description>VM Network</Description></Network></NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="other4xLinux64Guest"><Info>OS</Info><Description>Other Linux (64-bit)</Description></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier><vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:Description>Number of Virtual CPUs</rasd:Description><rasd:ElementName>{vcpus} virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>{vcpus}</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:Description>Memory Size</rasd:Description><rasd:ElementName>{memory_mib}MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>{memory_mib}</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>Controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>{sub}</rasd:ResourceSubType><rasd:ResourceType>{controller}</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>7</rasd:AddressOnParent><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>{nic}</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      {firmware}
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def virtualbox_ovf(name: str, vcpus: int, memory_mib: int, disk_href: str, capacity_mib: int) -> str:
    return f"""<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References><File ovf:id="file1" ovf:href="{disk_href}"/></References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="{capacity_mib}" ovf:capacityAllocationUnits="MegaBytes" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection><Info>Logical networks</Info><Network ovf:name="NAT"><Description>NAT</Description></Network></NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="101"><Info>OS</Info><Description>Linux_64</Description><vbox:OSType ovf:required="false">Linux_64</vbox:OSType></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier><vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType></System>
      <Item><rasd:Caption>{vcpus} virtual CPU</rasd:Caption><rasd:Description>Number of virtual CPUs</rasd:Description><rasd:ElementName>{vcpus} virtual CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>{vcpus}</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:Caption>{memory_mib} MB of memory</rasd:Caption><rasd:ElementName>{memory_mib} MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>{memory_mib}</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:Caption>sataController0</rasd:Caption><rasd:ElementName>sataController0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>AHCI</rasd:ResourceSubType><rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption><rasd:Connection>NAT</rasd:Connection><rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>E1000</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:Caption>disk1</rasd:Caption><rasd:ElementName>disk1</rasd:ElementName><rasd:HostResource>/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>7</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
    <vbox:Machine ovf:required="false" version="1.16-linux" uuid="{{0d0d6f2e-31b5-4c57-8d1d-8e5b0b6a3e1f}}" name="{name}">
      <ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>
      <Hardware><Firmware type="BIOS"/></Hardware>
    </vbox:Machine>
  </VirtualSystem>
</Envelope>
"""


def manifest_line(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return f"SHA256({path.name})= {digest.hexdigest()}\n"


def stream_optimized(raw: Path, vmdk: Path) -> None:
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
                    str(raw), str(vmdk)], check=True, capture_output=True, timeout=1800)


def build_ova(folder: Path, raw: Path, name: str, *, vcpus: int, memory_mib: int, dialect: str = "vmware",
              manifest: bool = True, ova_name: str | None = None) -> Path:
    """An OVA in `folder` holding `raw` (converted to a streamOptimized VMDK) and an OVF of `dialect`."""
    vmdk = folder / f"{name}-disk1.vmdk"
    stream_optimized(raw, vmdk)
    capacity_mib = -(-raw.stat().st_size // 2**20)
    write = vmware_ovf if dialect == "vmware" else virtualbox_ovf
    ovf = folder / f"{name}.ovf"
    ovf.write_text(write(name, vcpus, memory_mib, vmdk.name, capacity_mib))
    files = [ovf]
    if manifest:
        mf = folder / f"{name}.mf"
        mf.write_text(manifest_line(ovf) + manifest_line(vmdk))
        files.append(mf)
    files.append(vmdk)
    ova = folder / (ova_name or f"{name}.ova")
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as archive:
        for path in files:
            archive.add(path, arcname=path.name)
    return ova

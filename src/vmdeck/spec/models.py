"""What a VM should be: the pydantic models of a VM spec (core layer, no I/O).

A template is a partial spec (everything but the name); `VmSpec` is the fully
resolved result of template + user overrides that `vmdeck.domxml` renders.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,62}$"
_NAME_RE = re.compile(NAME_PATTERN)

Arch = Literal["x86_64", "aarch64"]
Accel = Literal["auto", "kvm", "tcg"]
DiskBus = Literal["virtio", "sata", "ide", "scsi"]
NicModel = Literal["virtio", "e1000", "e1000e", "rtl8139"]
VideoModel = Literal["vga", "virtio", "cirrus", "qxl", "bochs", "ramfb", "none"]

# Machine types per architecture that vmdeck knows how to lay out.
MACHINES: dict[str, tuple[str, ...]] = {"x86_64": ("q35", "pc"), "aarch64": ("virt",)}
# Buses a machine can actually carry: q35 has no IDE controller, virt neither SATA nor IDE.
BUSES: dict[str, tuple[str, ...]] = {
    "q35": ("virtio", "sata", "scsi"),
    "pc": ("virtio", "ide", "scsi"),
    "virt": ("virtio", "scsi"),
}


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):  # fullmatch: "$" would accept a trailing newline
        raise ValueError(
            f"invalid VM name {name!r}: use 1-63 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit"
        )
    return name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiskSpec(_Model):
    """A writable disk: a new volume vmdeck creates (size_gib), a linked clone of a library image
    (image, grown to size_gib when given) or an image the user brought (source)."""

    bus: DiskBus = "virtio"
    size_gib: float | None = Field(default=None, gt=0, le=65536)
    source: Path | None = None
    image: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,62}$")
    format: Literal["qcow2", "raw"] = "qcow2"
    target: str | None = None
    cache: Literal["none", "writeback", "writethrough", "directsync", "unsafe", "default"] = "none"

    @model_validator(mode="after")
    def _one_origin(self) -> DiskSpec:
        if self.source is not None and (self.size_gib is not None or self.image is not None):
            raise ValueError("a disk with a source image takes neither size_gib nor image")
        if self.source is None and self.size_gib is None and self.image is None:
            raise ValueError("a disk needs size_gib (a new volume), image (a library image) or source (a file)")
        return self


class CdromSpec(_Model):
    """A CD/DVD drive, empty or with an ISO inserted. Media are never owned by vmdeck."""

    bus: DiskBus = "sata"
    iso: Path | None = None
    target: str | None = None


class NicSpec(_Model):
    model: NicModel = "virtio"
    # "user": QEMU's user-mode network (no host bridge, works everywhere);
    # any other value names a libvirt network such as "default".
    network: str = Field(default="user", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    mac: str | None = Field(default=None, pattern=r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
    # User-mode NIC only: forward a free TCP port on the host's 127.0.0.1 to the guest's port 22
    # (libvirt's passt backend), which is what `vmdeck ssh` connects to.
    forward_ssh: bool = False

    @model_validator(mode="after")
    def _forward_needs_user_mode(self) -> NicSpec:
        if self.forward_ssh and self.network != "user":
            raise ValueError("forward_ssh works on a user-mode NIC only (network: user)")
        return self


class GraphicsSpec(_Model):
    type: Literal["vnc", "none"] = "vnc"
    # "socket": QEMU's VNC on a Unix socket in libvirt's per-VM folder, which only root and QEMU's user
    # can reach (a VNC port on 127.0.0.1 has no password: any local user would see every screen). The
    # web UI's proxy and virt-viewer (as root) connect there. An address is the user's explicit choice.
    listen: str = "socket"
    websocket: bool = False  # QEMU's own websocket port: only with an address to listen on

    @model_validator(mode="after")
    def _websocket_needs_an_address(self) -> GraphicsSpec:
        if self.websocket and self.listen == "socket":
            raise ValueError("graphics.websocket needs graphics.listen to be an address (the socket has no port)")
        return self


class BootSpec(_Model):
    """How the guest starts: firmware from disk/CD, or direct kernel boot of a vmdeck image."""

    kind: Literal["bios", "uefi", "kernel"] = "bios"
    image: str | None = None  # kernel boot: a vmdeck guest image name, e.g. "tiny"
    cmdline_extra: str = ""
    order: tuple[Literal["hd", "cdrom", "network"], ...] = ("hd", "cdrom")

    @model_validator(mode="after")
    def _kernel_needs_image(self) -> BootSpec:
        if self.kind == "kernel" and not self.image:
            raise ValueError("boot kind 'kernel' needs an image (e.g. image: tiny)")
        return self


class TemplateSpec(_Model):
    """A VM's base form: everything but its name. Loaded from YAML."""

    description: str = ""
    arch: Arch = "x86_64"
    machine: str = "q35"
    cpu_model: str | None = None  # None: host-passthrough under KVM, QEMU's default under TCG
    vcpus: int = Field(default=1, ge=1, le=512)
    memory_mib: int = Field(default=512, ge=32, le=16 * 1024 * 1024)
    accel: Accel = "auto"
    boot: BootSpec = BootSpec()
    disks: tuple[DiskSpec, ...] = ()
    cdroms: tuple[CdromSpec, ...] = ()
    nics: tuple[NicSpec, ...] = (NicSpec(),)
    graphics: GraphicsSpec = GraphicsSpec()
    video: VideoModel = "vga"
    tablet: Literal["usb", "virtio", "none"] = "usb"
    usb: bool = True
    serial: bool = True
    guest_agent: bool = True
    balloon: bool = True
    # Spare PCIe root ports on q35 so devices can be hot-plugged later.
    hotplug_slots: int = Field(default=4, ge=0, le=32)
    # TCG's translation cache in MiB (QEMU's tb-size; its default is ~1 GiB of address space, much of it
    # touched): 16 brings a tiny guest's QEMU from ~231 to ~177 MiB RSS (DESIGN.md). Ignored under KVM.
    tcg_tb_cache_mib: int | None = Field(default=None, ge=1, le=4096)
    # An emulated TPM 2.0 (swtpm); libvirt keeps its state per VM in /var/lib/libvirt/swtpm/UUID.
    tpm: bool = False
    # UEFI Secure Boot with Microsoft's keys enrolled (Debian's OVMF_VARS_4M.ms.fd), SMM on: q35 + UEFI only.
    secure_boot: bool = False
    # Hyper-V enlightenments: what a Windows guest uses to run well under KVM.
    hyperv: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> TemplateSpec:
        machines = MACHINES[self.arch]
        if self.machine not in machines:
            raise ValueError(f"machine {self.machine!r} is not available for {self.arch}: use {', '.join(machines)}")
        buses = BUSES[self.machine]
        devices: tuple[DiskSpec | CdromSpec, ...] = (*self.disks, *self.cdroms)
        for device in devices:
            if device.bus not in buses:
                raise ValueError(
                    f"bus {device.bus!r} does not exist on machine {self.machine!r}: use {', '.join(buses)}"
                )
        if self.tablet == "usb" and not self.usb:
            raise ValueError("a USB tablet needs usb: true")
        if self.secure_boot and (self.boot.kind != "uefi" or self.machine != "q35"):
            raise ValueError("secure_boot needs boot kind uefi on machine q35 (its SMM keeps the keys safe)")
        return self


class VmSpec(TemplateSpec):
    """A fully resolved VM: a template plus the user's overrides, with a name."""

    name: str
    template: str = "custom"

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name(value)

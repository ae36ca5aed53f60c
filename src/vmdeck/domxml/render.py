"""Render a VmSpec into libvirt domain XML (pure: everything external comes in `RenderContext`).

What libvirt fills in by itself (PCI addresses, controllers for the buses we
use, PS/2 devices on x86) is left to libvirt so that the XML stays what a
human would write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from vmdeck.domxml.names import VMDECK_NS, next_target
from vmdeck.spec.models import VmSpec

__all__ = ["RenderContext", "render_domain", "disk_element", "cdrom_element", "nic_element", "to_xml",
           "ssh_forward_args", "QEMU_NS"]


def to_xml(element: etree._Element) -> str:
    """One element (a device for attach/detach) as the XML text libvirt takes."""
    return etree.tostring(element, encoding="unicode")


@dataclass(frozen=True)
class RenderContext:
    domain_type: str  # "kvm" or "qemu" (TCG)
    disk_paths: tuple[Path, ...] = ()  # one per spec.disks: the new volume's path or the user's source
    owned_volumes: tuple[Path, ...] = ()  # the subset vmdeck created and may delete
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str = ""
    serial_log: Path | None = None
    accel_requested: str = "auto"
    accel_reason: str = ""
    ssh_port: int | None = None  # host port on 127.0.0.1 forwarded to guest port 22 (the forward_ssh NIC)
    ssh_mac: str | None = None  # that NIC's MAC address (fixed at create: the guest sees the same NIC each boot)
    seed: Path | None = None  # a cloud-init NoCloud seed image, attached as a read-only virtio disk
    login_user: str | None = None  # the user cloud-init creates: `vmdeck ssh` logs in as it
    base_image: str | None = None  # the library image the first disk is a linked clone of
    project: str | None = None  # the tenant owning the VM (vmdeck.vm.project), None outside any project


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def disk_element(
    path: Path, bus: str, target: str, fmt: str = "qcow2", cache: str = "none", readonly: bool = False
) -> etree._Element:
    disk = etree.Element("disk", type="block" if str(path).startswith("/dev/") else "file", device="disk")
    driver = _sub(disk, "driver", name="qemu", type=fmt)
    if cache != "default":
        driver.set("cache", cache)
    if fmt == "qcow2":
        driver.set("discard", "unmap")
    _sub(disk, "source", **({"dev": str(path)} if disk.get("type") == "block" else {"file": str(path)}))
    _sub(disk, "target", dev=target, bus=bus)
    if readonly:
        _sub(disk, "readonly")
    return disk


def cdrom_element(bus: str, target: str, iso: Path | None) -> etree._Element:
    disk = etree.Element("disk", type="file", device="cdrom")
    _sub(disk, "driver", name="qemu", type="raw")
    if iso is not None:
        _sub(disk, "source", file=str(iso))
    _sub(disk, "target", dev=target, bus=bus)
    _sub(disk, "readonly")
    return disk


def nic_element(model: str, network: str, mac: str | None) -> etree._Element:
    if network == "user":
        nic = etree.Element("interface", type="user")
    else:
        nic = etree.Element("interface", type="network")
        _sub(nic, "source", network=network)
    if mac:
        _sub(nic, "mac", address=mac.lower())
    _sub(nic, "model", type=model)
    return nic


QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
SSH_NETDEV_ID = "vmdeck-ssh0"
_QEMU_NIC_DEVICES = {"virtio": "virtio-net-pci", "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139"}


# A fixed slot on the root bus: libvirt assigns its own devices explicit addresses from slot 1
# upwards (and QEMU would otherwise pick slot 1 before libvirt's VGA gets it).
_SSH_NIC_SLOT = "0x10"


def ssh_forward_args(model: str, mac: str, port: int, machine: str = "q35") -> list[str]:
    """QEMU arguments for a user-mode NIC whose host port 127.0.0.1:port reaches the guest's port 22.

    Debian's libvirt 9.0 is built with passt support disabled (debian/patches "Disable passt
    support"), so libvirt's own <portForward> is refused there, and libvirt's slirp interface has no
    port forwards at all: the NIC is given to QEMU directly (slirp's hostfwd, bound to loopback only).
    """
    # The root bus is PCI Express on q35 and on aarch64's virt machine, plain PCI on i440fx ("pc").
    return ["-netdev", f"user,id={SSH_NETDEV_ID},hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", f"{_QEMU_NIC_DEVICES[model]},netdev={SSH_NETDEV_ID},mac={mac.lower()},"
                       f"bus={'pci.0' if machine == 'pc' else 'pcie.0'},addr={_SSH_NIC_SLOT}"]


def _metadata(root: etree._Element, spec: VmSpec, ctx: RenderContext) -> None:
    metadata = _sub(root, "metadata")
    vm = etree.SubElement(metadata, f"{{{VMDECK_NS}}}vm", nsmap={"vmdeck": VMDECK_NS})
    if ctx.project is not None:
        _sub(vm, f"{{{VMDECK_NS}}}project", ctx.project)
    _sub(vm, f"{{{VMDECK_NS}}}template", spec.template)
    _sub(vm, f"{{{VMDECK_NS}}}accel", ctx.domain_type, requested=ctx.accel_requested, reason=ctx.accel_reason)
    if spec.boot.kind == "kernel" and spec.boot.image:
        _sub(vm, f"{{{VMDECK_NS}}}image", spec.boot.image)
    for path in ctx.owned_volumes:
        _sub(vm, f"{{{VMDECK_NS}}}owned-volume", str(path))
    if ctx.base_image:
        _sub(vm, f"{{{VMDECK_NS}}}base-image", ctx.base_image)
    if ctx.login_user:
        _sub(vm, f"{{{VMDECK_NS}}}login-user", ctx.login_user)


def _os(root: etree._Element, spec: VmSpec, ctx: RenderContext) -> None:
    os_ = _sub(root, "os")
    _sub(os_, "type", "hvm", arch=spec.arch, machine=spec.machine)
    if spec.boot.kind == "uefi":
        # libvirt picks the firmware image (OVMF, AAVMF) and a per-VM variable store itself. Without
        # a word it picks Debian's Secure Boot build with Microsoft's keys enrolled, which refuses any
        # boot loader they did not sign (vmdeck's images' GRUB, most ISOs built at home).
        os_.set("firmware", "efi")
        firmware = _sub(os_, "firmware")
        _sub(firmware, "feature", enabled="no", name="secure-boot")
    if spec.boot.kind == "kernel":
        if ctx.kernel is None or ctx.initrd is None:
            raise ValueError("kernel boot needs the image's kernel and initrd in the render context")
        _sub(os_, "kernel", str(ctx.kernel))
        _sub(os_, "initrd", str(ctx.initrd))
        cmdline = " ".join(part for part in (ctx.cmdline, spec.boot.cmdline_extra) if part)
        if cmdline:
            _sub(os_, "cmdline", cmdline)
    else:
        for device in spec.boot.order:
            _sub(os_, "boot", dev=device)


def _cpu(root: etree._Element, spec: VmSpec, ctx: RenderContext) -> None:
    if spec.cpu_model:
        cpu = _sub(root, "cpu", mode="custom", match="exact", check="none")
        _sub(cpu, "model", spec.cpu_model, fallback="forbid")
    elif ctx.domain_type == "kvm":
        _sub(root, "cpu", mode="host-passthrough", check="none", migratable="on")
    elif spec.arch == "aarch64":
        cpu = _sub(root, "cpu", mode="custom", match="exact", check="none")
        _sub(cpu, "model", "cortex-a57", fallback="forbid")
    # x86 under TCG: QEMU's default model (qemu64) is what TCG emulates fastest.


def _devices(root: etree._Element, spec: VmSpec, ctx: RenderContext) -> None:
    devices = _sub(root, "devices")
    taken: list[str] = []
    for disk, path in zip(spec.disks, ctx.disk_paths, strict=True):
        target = disk.target or next_target(disk.bus, taken)
        taken.append(target)
        devices.append(disk_element(path, disk.bus, target, "qcow2" if disk.image else disk.format, disk.cache))
    if ctx.seed is not None:
        target = next_target("virtio", taken)
        taken.append(target)
        devices.append(disk_element(ctx.seed, "virtio", target, "raw", "default", readonly=True))
    for cdrom in spec.cdroms:
        target = cdrom.target or next_target(cdrom.bus, taken)
        taken.append(target)
        devices.append(cdrom_element(cdrom.bus, target, cdrom.iso))
    if any(d.bus == "scsi" for d in spec.disks) or any(c.bus == "scsi" for c in spec.cdroms):
        _sub(devices, "controller", type="scsi", model="virtio-scsi")
    if spec.usb:
        _sub(devices, "controller", type="usb", model="qemu-xhci" if spec.machine != "pc" else "piix3-uhci")
    else:
        _sub(devices, "controller", type="usb", model="none")
    if spec.machine in ("q35", "virt"):
        # Empty root ports: PCIe hot-plug needs a free port per device to come. The root
        # bus is named first: libvirt would give the first unindexed port index 0 otherwise.
        if spec.hotplug_slots:
            _sub(devices, "controller", type="pci", index="0", model="pcie-root")
        for _ in range(spec.hotplug_slots):
            _sub(devices, "controller", type="pci", model="pcie-root-port")
    for nic in spec.nics:
        if nic.forward_ssh and ctx.ssh_port is not None:
            continue  # given to QEMU directly: see ssh_forward_args
        devices.append(nic_element(nic.model, nic.network, nic.mac))
    if spec.serial:
        serial = _sub(devices, "serial", type="pty")
        if ctx.serial_log is not None:
            # virtlogd keeps a copy of everything the guest prints: readiness and post-mortems.
            _sub(serial, "log", file=str(ctx.serial_log), append="off")
        _sub(serial, "target", port="0")
        console = _sub(devices, "console", type="pty")
        _sub(console, "target", type="serial", port="0")
    if spec.guest_agent:
        channel = _sub(devices, "channel", type="unix")
        _sub(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    if spec.tablet != "none":
        _sub(devices, "input", type="tablet", bus=spec.tablet)
    if spec.arch == "aarch64" and spec.graphics.type != "none":
        _sub(devices, "input", type="keyboard", bus="virtio")
    if spec.graphics.type == "vnc" and spec.graphics.listen == "socket":
        # No socket path: libvirt makes one in the VM's private folder (/var/lib/libvirt/qemu/domain-*).
        _sub(_sub(devices, "graphics", type="vnc"), "listen", type="socket")
    elif spec.graphics.type == "vnc":
        graphics = _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen=spec.graphics.listen)
        if spec.graphics.websocket:
            graphics.set("websocket", "-1")
        _sub(graphics, "listen", type="address", address=spec.graphics.listen)
    if spec.video != "none":
        video = _sub(devices, "video")
        _sub(video, "model", type=spec.video, **({"heads": "1"} if spec.video in ("vga", "cirrus", "virtio") else {}))
    elif spec.arch == "x86_64":
        video = _sub(devices, "video")
        _sub(video, "model", type="none")
    if spec.balloon:
        balloon = _sub(devices, "memballoon", model="virtio")
        _sub(balloon, "stats", period="5")
    else:
        _sub(devices, "memballoon", model="none")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")


def _found(root: etree._Element, path: str) -> etree._Element:
    element = root.find(path)
    if element is None:
        raise ValueError(f"the rendered domain has no <{path}>")
    return element


def _guest_needs(root: etree._Element, spec: VmSpec, ctx: RenderContext) -> None:
    """What some guests insist on (Windows 11): a TPM 2.0, Secure Boot with SMM, Hyper-V enlightenments.
    Kept apart from the rest so that a VM without them renders exactly as before."""
    if spec.tpm:
        # tpm-crb on x86 (what Windows 11 looks for); ARM's virt machine has the TIS device on its MMIO bus.
        tpm = _sub(_found(root, "devices"), "tpm", model="tpm-crb" if spec.arch == "x86_64" else "tpm-tis")
        _sub(tpm, "backend", type="emulator", version="2.0")
    if spec.secure_boot:
        # libvirt picks the firmware that has these features from QEMU's firmware descriptors: on Debian,
        # OVMF_CODE_4M.ms.fd with a copy of OVMF_VARS_4M.ms.fd (Microsoft's keys enrolled) for the VM.
        firmware = _found(root, "os/firmware")
        for feature in firmware.findall("feature"):
            firmware.remove(feature)
        _sub(firmware, "feature", enabled="yes", name="enrolled-keys")
        _sub(firmware, "feature", enabled="yes", name="secure-boot")
        _sub(_found(root, "features"), "smm", state="on")
    # Under TCG QEMU refuses most of them ("kernel doesn't allow setting HyperV VP_INDEX"): KVM only.
    if spec.hyperv and ctx.domain_type == "kvm":
        hyperv = _sub(_found(root, "features"), "hyperv", mode="custom")
        for name in ("relaxed", "vapic", "vpindex", "runtime", "synic", "stimer", "reset", "frequencies"):
            _sub(hyperv, name, state="on")
        _sub(hyperv, "spinlocks", state="on", retries="8191")
        _sub(_found(root, "clock"), "timer", name="hypervclock", present="yes")


def render_domain(spec: VmSpec, ctx: RenderContext) -> str:
    """The domain XML for `spec`, as libvirt's defineXML takes it."""
    root = etree.Element("domain", type=ctx.domain_type)
    _sub(root, "name", spec.name)
    if spec.description:
        _sub(root, "title", spec.description[:80] if spec.template == "custom" else f"from template {spec.template}")
    _metadata(root, spec, ctx)
    _sub(root, "memory", str(spec.memory_mib), unit="MiB")
    _sub(root, "currentMemory", str(spec.memory_mib), unit="MiB")
    _sub(root, "vcpu", str(spec.vcpus), placement="static")
    _os(root, spec, ctx)
    features = _sub(root, "features")
    if spec.arch == "x86_64":
        _sub(features, "acpi")
        _sub(features, "apic")
    else:
        # ACPI on aarch64 needs UEFI (the firmware installs QEMU's tables); direct kernel boot uses
        # the device tree instead. With ACPI a UEFI guest gets ACPI's power button for a clean shutdown.
        if spec.boot.kind == "uefi":
            _sub(features, "acpi")
        _sub(features, "gic", version="3" if ctx.domain_type == "kvm" else "2")
    if spec.tcg_tb_cache_mib and ctx.domain_type == "qemu":
        # libvirt >= 8.0 passes it to QEMU as -accel tcg,tb-size=N.
        _sub(_sub(features, "tcg"), "tb-cache", str(spec.tcg_tb_cache_mib), unit="MiB")
    _cpu(root, spec, ctx)
    _sub(root, "clock", offset="utc")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")
    _devices(root, spec, ctx)
    _guest_needs(root, spec, ctx)
    forwarded = next((nic for nic in spec.nics if nic.forward_ssh), None)
    if forwarded is not None and ctx.ssh_port is not None:
        if not ctx.ssh_mac:
            raise ValueError("an SSH-forwarded NIC needs its MAC address in the render context")
        commandline = etree.SubElement(root, f"{{{QEMU_NS}}}commandline", nsmap={"qemu": QEMU_NS})
        for arg in ssh_forward_args(forwarded.model, ctx.ssh_mac, ctx.ssh_port, spec.machine):
            etree.SubElement(commandline, f"{{{QEMU_NS}}}arg", value=arg)
    return etree.tostring(root, pretty_print=True, encoding="unicode")

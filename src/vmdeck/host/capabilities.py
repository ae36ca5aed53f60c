"""What a host offers: CPU virtualization extensions, KVM, QEMU/libvirt versions, emulated arches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vmdeck.domxml.capabilities import parse_capabilities
from vmdeck.host.connection import Host

__all__ = ["HostFacts", "host_facts", "format_version", "kvm_module"]


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    uri: str
    cpu_model: str
    cpu_vendor: str
    pcpus: int
    memory_mib: int
    virt_extensions: tuple[str, ...]  # "vmx" (Intel VT-x) / "svm" (AMD-V) as the host CPU reports them
    kvm_device: bool  # /dev/kvm exists (local hosts only; None-equivalent False on remote)
    kvm_module: str | None  # kvm_intel / kvm_amd / kvm_pvm ... (local hosts)
    kvm_offered: bool  # libvirt offers domain type 'kvm' for the host arch
    qemu_version: str
    libvirt_version: str
    host_arch: str
    driver: str  # libvirt's driver name: "QEMU", or "TEST" for libvirt's built-in fake hypervisor
    emulated_arches: dict[str, tuple[str, ...]]  # arch -> domain types ("qemu" = TCG, "kvm")


def format_version(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, micro = divmod(rest, 1000)
    return f"{major}.{minor}.{micro}"


def kvm_module() -> str | None:
    """Which KVM flavour is loaded: kvm_intel, kvm_amd, or a paravirtual one like kvm_pvm."""
    modules = Path("/sys/module")
    for name in ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm_hv", "kvm_arm"):
        if (modules / name).exists():
            return name
    return "kvm" if (modules / "kvm").exists() else None


def host_facts(host: Host) -> HostFacts:
    caps = parse_capabilities(host.conn.capabilities())
    info = host.conn.info()
    qemu = host.conn.hypervisor_version()
    lib = host.conn.libvirt_version()
    hostname = host.conn.hostname()
    driver = host.conn.driver()
    host_arch = caps.host_arch
    features = set(caps.cpu_features)
    if host.is_local:
        # libvirt reports the CPU *model's* features separately; /proc has the truth for vmx/svm.
        try:
            flags = Path("/proc/cpuinfo").read_text().split()
            features |= {f for f in ("vmx", "svm") if f in flags}
        except OSError:
            pass
    arches = caps.emulated_arches
    kvm_offered = "kvm" in arches.get(host_arch, ())
    if kvm_offered:
        kvm_offered = host.conn.offers_domain_type(host_arch, "kvm")
    return HostFacts(
        hostname=hostname,
        uri=host.uri,
        cpu_model=caps.cpu_model,
        cpu_vendor=caps.cpu_vendor,
        pcpus=int(info[2]),
        memory_mib=int(info[1]),
        virt_extensions=tuple(sorted(f for f in features if f in ("vmx", "svm"))),
        kvm_device=host.is_local and os.path.exists("/dev/kvm"),
        kvm_module=kvm_module() if host.is_local else None,
        kvm_offered=kvm_offered,
        qemu_version=format_version(qemu),
        libvirt_version=format_version(lib),
        host_arch=host_arch,
        driver=driver,
        emulated_arches=arches,
    )

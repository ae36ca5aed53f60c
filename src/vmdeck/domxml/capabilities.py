"""Read libvirt's host capabilities XML (virConnectGetCapabilities) into plain data (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

__all__ = ["CapabilitiesView", "parse_capabilities"]


@dataclass(frozen=True)
class CapabilitiesView:
    host_arch: str
    cpu_model: str
    cpu_vendor: str
    cpu_features: frozenset[str]  # the host CPU model's features as libvirt names them ("vmx", "svm" ...)
    emulated_arches: dict[str, tuple[str, ...]]  # arch -> domain types ("qemu" = TCG, "kvm")


def parse_capabilities(xml: str) -> CapabilitiesView:
    caps = etree.fromstring(xml.encode())
    arches: dict[str, tuple[str, ...]] = {}
    for guest in caps.iterfind("guest"):
        arch = guest.find("arch")
        if arch is None:
            continue
        name = arch.get("name", "")
        types = {d.get("type", "") for d in arch.iterfind("domain")}
        arches[name] = tuple(sorted(set(arches.get(name, ())) | types))
    return CapabilitiesView(
        host_arch=caps.findtext("host/cpu/arch", ""),
        cpu_model=caps.findtext("host/cpu/model", ""),
        cpu_vendor=caps.findtext("host/cpu/vendor", ""),
        cpu_features=frozenset(f.get("name", "") for f in caps.iterfind("host/cpu/feature")),
        emulated_arches=arches,
    )

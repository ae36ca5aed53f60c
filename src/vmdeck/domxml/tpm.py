"""A domain's emulated TPM, read from its XML (domxml layer: pure)."""

from __future__ import annotations

from lxml import etree

__all__ = ["emulated_tpm_version", "tpm_version_of"]


def emulated_tpm_version(xml: str) -> str | None:
    """The version ("2.0", "1.2") of the domain's swtpm-backed TPM, or None when it has none."""
    return tpm_version_of(etree.fromstring(xml.encode()))


def tpm_version_of(root: etree._Element) -> str | None:
    """The same, from a parsed <domain>."""
    backend = root.find("devices/tpm/backend[@type='emulator']")
    if backend is None:
        return None
    return backend.get("version", "1.2")  # libvirt's default when the XML names none

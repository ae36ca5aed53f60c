"""The record of a VM's last migration, kept in its libvirt metadata so it follows the VM (pure, no I/O).

One element in vmdeck's migration namespace, written with virDomainSetMetadata on the host the VM
ends up on (the destination after a move, the source after an aborted one):
    <migration xmlns="https://vmdeck.dev/xmlns/migration/1" outcome="completed" from=".." to=".."
               at="1764170000" downtime-ms="41" total-ms="2300" memory-bytes=".." disk-bytes=".."/>
"""

from __future__ import annotations

from typing import Any

from lxml import etree

__all__ = ["MIGRATION_NS", "MIGRATION_KEY", "render_record", "record_from_domain"]

MIGRATION_NS = "https://vmdeck.dev/xmlns/migration/1"
MIGRATION_KEY = "vmdeckmig"
_INTS = ("at", "downtime-ms", "total-ms", "libvirt-total-ms", "memory-bytes", "disk-bytes", "timeout-s")


def render_record(record: dict[str, Any]) -> str:
    # The default namespace (no prefix): libvirt puts its own prefix (MIGRATION_KEY) on it and refuses
    # an element that brings another one. (lxml accepts None as the default prefix; its stubs do not.)
    element = etree.Element(f"{{{MIGRATION_NS}}}migration", nsmap={None: MIGRATION_NS})  # type: ignore[dict-item]
    for key, value in record.items():
        if value is not None:
            element.set(key.replace("_", "-"), str(value))
    return str(etree.tostring(element).decode())


def record_from_domain(domain_xml: str) -> dict[str, Any] | None:
    """The last migration recorded in a domain's XML, with numbers as ints; None when it never moved."""
    root = etree.fromstring(domain_xml.encode())
    element = root.find(f"metadata/{{{MIGRATION_NS}}}migration")
    if element is None:
        return None
    record: dict[str, Any] = {}
    for raw_key, raw_value in element.attrib.items():
        key, value = str(raw_key), str(raw_value)
        record[key.replace("-", "_")] = int(value) if key in _INTS and value.lstrip("-").isdigit() else value
    return record

"""libvirt storage XML that vmdeck writes: its `dir` pool and thin volumes (pure)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

__all__ = ["pool_xml", "volume_xml", "pool_target_path", "raw_volume_xml", "volume_format_of", "volume_owner_of",
           "Owner"]

Owner = tuple[int, int, int]  # uid, gid, mode: who a file (or a pool's folder) belongs to


def _permissions(target: etree._Element, owner: Owner | None) -> None:
    if owner is not None:
        perms = etree.SubElement(target, "permissions")
        etree.SubElement(perms, "mode").text = f"0{owner[2] & 0o7777:o}"
        etree.SubElement(perms, "owner").text = str(owner[0])
        etree.SubElement(perms, "group").text = str(owner[1])


def pool_xml(name: str, path: Path, owner: Owner | None = None) -> str:
    """A `dir` pool; `owner`: of its folder when libvirt builds it."""
    root = etree.Element("pool", type="dir")
    etree.SubElement(root, "name").text = name
    target = etree.SubElement(root, "target")
    etree.SubElement(target, "path").text = str(path)
    _permissions(target, owner)
    return etree.tostring(root, encoding="unicode")


def volume_xml(name: str, capacity: int, fmt: str, owner: Owner | None = None) -> str:
    """A thin volume: `capacity` bytes, nothing allocated yet (its file given to `owner`, else libvirt's)."""
    root = etree.Element("volume")
    etree.SubElement(root, "name").text = name
    etree.SubElement(root, "capacity", unit="bytes").text = str(capacity)
    etree.SubElement(root, "allocation", unit="bytes").text = "0"
    target = etree.SubElement(root, "target")
    etree.SubElement(target, "format", type=fmt)
    if fmt == "qcow2":
        # qcow2 v3: only it holds persistent dirty bitmaps, which incremental backups need (libvirt 9.0
        # still makes v2 by default).
        etree.SubElement(target, "compat").text = "1.1"
    _permissions(target, owner)
    return etree.tostring(root, encoding="unicode")


def pool_target_path(xml: str) -> str:
    """The folder behind a `dir` pool, from the pool's XML."""
    return str(etree.fromstring(xml.encode()).findtext("target/path") or "?")


def volume_format_of(xml: str) -> tuple[str, str]:
    """(format, qcow2 compat: "1.1" for v3, "0.10" for v2, "" when not said) from a volume's XML."""
    root = etree.fromstring(xml.encode())
    fmt = root.find("target/format")
    return (fmt.get("type", "") if fmt is not None else ""), root.findtext("target/compat") or ""


def volume_owner_of(xml: str) -> Owner | None:
    """(uid, gid, mode) of a volume's file from its XML; None when libvirt does not say."""
    perms = etree.fromstring(xml.encode()).find("target/permissions")
    if perms is None:
        return None
    try:
        return (int(perms.findtext("owner") or ""), int(perms.findtext("group") or ""),
                int(perms.findtext("mode") or "", 8))
    except ValueError:
        return None


def raw_volume_xml(name: str, capacity: int) -> str:
    """A raw volume of exactly `capacity` bytes (a seed image to be uploaded into it)."""
    root = etree.Element("volume")
    etree.SubElement(root, "name").text = name
    etree.SubElement(root, "capacity", unit="bytes").text = str(capacity)
    target = etree.SubElement(root, "target")
    etree.SubElement(target, "format", type="raw")
    return etree.tostring(root, encoding="unicode")

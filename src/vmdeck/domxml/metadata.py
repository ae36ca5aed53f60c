"""vmdeck's own record inside a domain's <metadata> (pure): which project a VM belongs to.

libvirt hands a metadata element back without its namespace (`<vm><project>p</project>...</vm>`)
and re-adds the namespace on setMetadata, so these helpers work on the bare element.
"""

from __future__ import annotations

# Reading uses the standard library's parser: `vmdeck list` reads every VM's project and must not
# pay for importing lxml (tests/unit/test_cli_fast.py); the element is libvirt's own small output.
from xml.etree import ElementTree

__all__ = ["project_in", "with_project"]


def project_in(metadata_xml: str | None) -> str | None:
    """The project named in vmdeck's metadata element, None when there is none (a foreign VM)."""
    if not metadata_xml:
        return None
    root = ElementTree.fromstring(metadata_xml)
    text = root.findtext("project")
    return text.strip() if text and text.strip() else None


def with_project(metadata_xml: str | None, project: str | None) -> str:
    """vmdeck's metadata element with `project` set (or dropped for None), every other field kept."""
    from lxml import etree

    root = etree.fromstring(metadata_xml.encode()) if metadata_xml else etree.Element("vm")
    for old in root.findall("project"):
        root.remove(old)
    if project is not None:
        element = etree.Element("project")
        element.text = project
        root.insert(0, element)
    return etree.tostring(root, encoding="unicode")

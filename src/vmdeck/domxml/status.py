"""Read libvirt's status XML of a running VM (/run/libvirt/qemu/NAME.xml) (pure)."""

from __future__ import annotations

from lxml import etree

__all__ = ["status_pids"]


def status_pids(text: str) -> tuple[int | None, dict[int, int]] | None:
    """(QEMU pid, vCPU number -> thread id) from <domstatus pid=...><vcpus><vcpu id= pid=/>; None if unreadable."""
    try:
        root = etree.fromstring(text.encode())
    except etree.XMLSyntaxError:
        return None
    pid = root.get("pid")
    tids = {int(v.get("id", "0")): int(v.get("pid", "0")) for v in root.iterfind("vcpus/vcpu") if v.get("pid")}
    return (int(pid) if pid else None), tids

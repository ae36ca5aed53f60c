"""A VM's memory as the host sees it: QEMU's resident set, guest RAM actually touched, host features
that change the picture (core layer).

Guest RAM is one big mapping in QEMU's address space (`memory-backend-ram`
"pc.ram"), the size of the VM's memory. The kernel gives it pages lazily, the
first time the guest touches each one, so a 4 GiB VM that booted and idles may
hold only a few hundred MiB. Everything else QEMU holds is its own: libraries
(file-backed), heap, and under TCG the translation cache (anonymous rwx
mappings holding translated guest code). The balloon is the guest's driver
handing pages back: libvirt's "current" memory is the balloon's target.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmdeck.hostview.procfs import SmapsEntry, parse_kib_fields, parse_smaps, read_text, smaps_pss_kib

__all__ = ["HostMemoryFeatures", "MemoryView", "find_guest_ram", "host_memory_features", "read_memory"]


@dataclass(frozen=True)
class HostMemoryFeatures:
    thp_mode: str  # transparent hugepages: always | madvise (QEMU madvises guest RAM) | never
    hugepages_total: int  # static (hugetlbfs) pages; a VM uses them only with <memoryBacking><hugepages/>
    hugepages_free: int
    hugepage_size_kib: int
    ksm_running: bool  # kernel same-page merging: identical pages of many VMs stored once
    ksm_pages_sharing: int
    ksm_pages_shared: int
    swap_total_kib: int
    swap_free_kib: int


def _bracketed(text: str) -> str:
    """ "always [madvise] never" -> "madvise"."""
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if start >= 0 < end else text.strip()


def host_memory_features(sys_mm: Path = Path("/sys/kernel/mm"), meminfo_text: str | None = None) -> HostMemoryFeatures:
    meminfo = parse_kib_fields(meminfo_text if meminfo_text is not None else (read_text("/proc/meminfo") or ""))

    def ksm(name: str) -> int:
        value = (read_text(sys_mm / "ksm" / name) or "0").strip()
        return int(value) if value.isdigit() else 0

    return HostMemoryFeatures(
        thp_mode=_bracketed(read_text(sys_mm / "transparent_hugepage" / "enabled") or "unknown"),
        hugepages_total=meminfo.get("HugePages_Total", 0), hugepages_free=meminfo.get("HugePages_Free", 0),
        hugepage_size_kib=meminfo.get("Hugepagesize", 0),
        ksm_running=ksm("run") == 1, ksm_pages_sharing=ksm("pages_sharing"), ksm_pages_shared=ksm("pages_shared"),
        swap_total_kib=meminfo.get("SwapTotal", 0), swap_free_kib=meminfo.get("SwapFree", 0),
    )


def find_guest_ram(entries: list[SmapsEntry], memory_kib: int) -> SmapsEntry | None:
    """The mapping holding guest RAM: anonymous (or memfd/hugetlbfs), writable, not executable, and the
    size of the VM's memory. Not simply the largest anonymous mapping: under TCG the translation cache
    is a set of large anonymous rwx mappings that can together exceed a small guest's RAM."""
    if memory_kib <= 0:
        return None
    candidates = [
        e for e in entries
        if (e.anonymous or e.path.startswith("/memfd:") or "hugepages" in e.path)
        and e.perms.startswith("rw") and "x" not in e.perms
        and memory_kib * 0.9 <= e.size_kib <= memory_kib * 1.1 + 4096
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda e: (abs(e.size_kib - memory_kib), -e.rss_kib))


@dataclass
class MemoryView:
    configured_kib: int  # the VM's maximum memory (what the guest saw at boot)
    current_kib: int  # what the guest has now: configured minus what the balloon holds (QEMU's report)
    guest_available_kib: int | None  # MemTotal as the guest's balloon driver reports it
    guest_unused_kib: int | None  # MemFree inside the guest
    rss_kib: int  # QEMU's resident set: RssAnon + RssFile + RssShmem
    rss_anon_kib: int
    rss_file_kib: int
    rss_shmem_kib: int
    swap_kib: int  # QEMU's pages the host swapped out
    pss_kib: int | None  # proportional: shared pages divided among the processes sharing them
    guest_ram_mapping_kib: int | None
    guest_ram_rss_kib: int | None  # guest RAM pages the guest has touched (and the host still holds)
    guest_ram_touched_pct: float | None
    guest_ram_huge_kib: int | None  # ... of which backed by transparent hugepages (2 MiB)
    tcg_code_cache_rss_kib: int | None  # TCG's translated-code buffers (anonymous rwx); 0 under KVM
    rss_change_kib_per_s: float | None = None


def read_memory(pid: int, configured_kib: int, current_kib: int, balloon: dict[str, int],
                *, detailed: bool = True) -> MemoryView | None:
    """Read QEMU's memory. `detailed` also parses /proc/PID/smaps (PSS, guest RAM touched): it costs
    a walk of QEMU's page tables, a few ms per GiB resident, so bulk views may skip it."""
    status_text = read_text(f"/proc/{pid}/status")
    if status_text is None:
        return None
    status = parse_kib_fields(status_text)
    pss = ram_mapping = ram_rss = ram_huge = tcg_rss = None
    touched = None
    if detailed:
        smaps_text = read_text(f"/proc/{pid}/smaps")
        if smaps_text is None:
            return None
        pss = smaps_pss_kib(smaps_text)
        # Only anonymous/memfd/hugetlbfs mappings can be guest RAM or TCG's buffers: skip the rest's fields.
        entries = parse_smaps(smaps_text, lambda _perms, path: path == "" or path.startswith("/memfd:")
                              or "hugepages" in path)
        ram = find_guest_ram(entries, configured_kib)
        if ram is not None:
            ram_mapping, ram_rss, ram_huge = ram.size_kib, ram.rss_kib, ram.anon_huge_kib
            touched = round(ram.rss_kib / configured_kib * 100, 1) if configured_kib else None
        tcg_rss = sum(e.rss_kib for e in entries if e.anonymous and "x" in e.perms)
    return MemoryView(
        configured_kib=configured_kib, current_kib=current_kib,
        guest_available_kib=balloon.get("available"), guest_unused_kib=balloon.get("unused"),
        rss_kib=status.get("VmRSS", 0), rss_anon_kib=status.get("RssAnon", 0),
        rss_file_kib=status.get("RssFile", 0), rss_shmem_kib=status.get("RssShmem", 0),
        swap_kib=status.get("VmSwap", 0), pss_kib=pss, guest_ram_mapping_kib=ram_mapping,
        guest_ram_rss_kib=ram_rss, guest_ram_touched_pct=touched, guest_ram_huge_kib=ram_huge,
        tcg_code_cache_rss_kib=tcg_rss,
    )

"""Parsers of the /proc formats the host view reads, on sample text copied from a real TCG VM."""

from __future__ import annotations

import pytest

from vmdeck.hostview.memory import find_guest_ram, host_memory_features
from vmdeck.hostview.procfs import (
    boot_time,
    format_cpu_list,
    parse_cpu_list,
    parse_kib_fields,
    parse_schedstat,
    parse_smaps,
    parse_stat,
    parse_status,
)
from vmdeck.hostview.sched import parse_thread_sched

# /proc/11772/task/11780/stat of a "CPU 0/TCG" thread (the comm has a space and a slash).
STAT = ("11780 (CPU 0/TCG) S 1 11771 11771 0 -1 4194368 3771 0 0 0 507 28 0 0 20 0 6 0 2912 2137608192 "
        "70269 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 -1 1 0 0 0 0 0 0 0 0 0 0 0 0 0")

STATUS = """Name:\tCPU 0/TCG
State:\tS (sleeping)
Uid:\t64055\t64055\t64055\t64055
VmRSS:\t  281064 kB
RssAnon:\t  253280 kB
RssFile:\t   27784 kB
RssShmem:\t       0 kB
VmSwap:\t       0 kB
Cpus_allowed_list:\t0-1
voluntary_ctxt_switches:\t3795
nonvoluntary_ctxt_switches:\t7659
"""

SMAPS = """55d1c0000000-55d1c0100000 r-xp 00000000 08:01 123 /usr/bin/qemu-system-x86_64
Size:               1024 kB
Rss:                 900 kB
Pss:                 450 kB
AnonHugePages:         0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me dw
7fd2fbe00000-7fd313e00000 rw-p 00000000 00:00 0
Size:             393216 kB
Rss:              137216 kB
Pss:              137216 kB
AnonHugePages:    135168 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me ac sd hg
7fd314000000-7fd317fff000 rwxp 00000000 00:00 0
Size:              65532 kB
Rss:               45056 kB
Pss:               45056 kB
AnonHugePages:         0 kB
Swap:                  0 kB
7fd400000000-7fd440000000 rwxp 00000000 00:00 0
Size:            1048576 kB
Rss:                   0 kB
Pss:                   0 kB
AnonHugePages:         0 kB
Swap:                  0 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  16 kB
Pss:                  16 kB
AnonHugePages:         0 kB
Swap:                  0 kB
"""


def test_stat_fields_survive_a_comm_with_spaces_and_parentheses() -> None:
    fields = parse_stat(STAT)
    assert fields["comm"] == "CPU 0/TCG"
    assert (fields["utime_ticks"], fields["stime_ticks"], fields["processor"]) == (507, 28, 1)
    assert fields["starttime_ticks"] == 2912
    tricky = parse_stat(STAT.replace("(CPU 0/TCG)", "(a) b (c))"))
    assert tricky["comm"] == "a) b (c)" and tricky["processor"] == 1


def test_status_and_kib_fields() -> None:
    status = parse_status(STATUS)
    assert status["Cpus_allowed_list"] == "0-1"
    assert status["nonvoluntary_ctxt_switches"] == "7659"
    kib = parse_kib_fields(STATUS)
    assert kib["RssAnon"] == 253280 and kib["VmRSS"] == 281064
    assert "Cpus_allowed_list" not in kib  # not a kB field


def test_schedstat_and_thread_reading() -> None:
    assert parse_schedstat("4972442086 9777230750 8749\n") == (4972442086, 9777230750, 8749)
    reading = parse_thread_sched(STAT, STATUS, "4972442086 9777230750 8749\n")
    assert reading.user_time_ns == 5_070_000_000  # 507 ticks of 10 ms
    assert reading.run_delay_ns == 9777230750
    assert (reading.voluntary_switches, reading.involuntary_switches) == (3795, 7659)
    assert reading.last_cpu == 1 and reading.cpus_allowed == "0-1"


def test_smaps_and_the_guest_ram_mapping_is_not_the_tcg_code_buffer() -> None:
    entries = parse_smaps(SMAPS)
    assert len(entries) == 5
    assert entries[0].path == "/usr/bin/qemu-system-x86_64" and entries[4].path == "[stack]"
    assert sum(e.pss_kib for e in entries) == 450 + 137216 + 45056 + 16
    # The 1 GiB rwx TCG buffer is the largest anonymous mapping; guest RAM is the rw- one of the VM's size.
    ram = find_guest_ram(entries, 393216)
    assert ram is not None and ram.rss_kib == 137216 and ram.anon_huge_kib == 135168
    assert find_guest_ram(entries, 8 * 1024 * 1024) is None


@pytest.mark.parametrize(("text", "cpus", "canonical"), [
    ("1", [1], "1"), ("0-1", [0, 1], "0-1"), ("0,2-3,7", [0, 2, 3, 7], "0,2-3,7"), (" 3,1 ", [1, 3], "1,3"),
])
def test_cpu_lists(text: str, cpus: list[int], canonical: str) -> None:
    assert parse_cpu_list(text) == cpus
    assert format_cpu_list(cpus) == canonical


@pytest.mark.parametrize("bad", ["a", "3-1", "1-", "-1"])
def test_bad_cpu_lists(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_cpu_list(bad)


def test_btime_and_host_memory_features(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert boot_time("cpu  1 2 3\nbtime 1795673000\nprocesses 9\n") == 1795673000
    (tmp_path / "transparent_hugepage").mkdir()
    (tmp_path / "transparent_hugepage" / "enabled").write_text("always [madvise] never\n")
    (tmp_path / "ksm").mkdir()
    (tmp_path / "ksm" / "run").write_text("1\n")
    (tmp_path / "ksm" / "pages_sharing").write_text("512\n")
    features = host_memory_features(tmp_path, "HugePages_Total:      16\nHugePages_Free:        8\n"
                                              "Hugepagesize:       2048 kB\nSwapTotal:  1024 kB\nSwapFree: 512 kB\n")
    assert features.thp_mode == "madvise" and features.ksm_running and features.ksm_pages_sharing == 512
    assert (features.hugepages_total, features.hugepages_free, features.hugepage_size_kib) == (16, 8, 2048)
    assert (features.swap_total_kib, features.swap_free_kib) == (1024, 512)

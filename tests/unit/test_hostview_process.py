"""QEMU thread classification, libvirt's vCPU thread map and the accelerator evidence."""

from __future__ import annotations

import pytest

from vmdeck.hostview.process import (
    ThreadInfo,
    accelerator_from_cmdline,
    check_thread_map,
    classify_thread,
    parse_status_xml,
)

PID = 1000


@pytest.mark.parametrize(("name", "tid", "role", "vcpu"), [
    ("qemu-system-x86", PID, "main", None),
    ("qemu-system-x86", PID + 4, "helper", None),
    ("IO mon_iothread", PID + 7, "monitor-io", None),
    ("IO iothread1", PID + 8, "iothread", None),
    ("CPU 0/TCG", PID + 8, "vcpu", 0),
    ("CPU 13/KVM", PID + 9, "vcpu", 13),
    ("ALL CPUs/TCG", PID + 9, "vcpu", None),
    ("vnc_worker", PID + 10, "vnc", None),
    ("worker", PID + 11, "worker", None),
    ("call_rcu", PID + 12, "rcu", None),
    ("live_migration", PID + 13, "migration", None),
    ("something", PID + 14, "other", None),
])
def test_classify(name: str, tid: int, role: str, vcpu: int | None) -> None:
    got_role, label, got_vcpu = classify_thread(name, tid, PID)
    assert (got_role, got_vcpu) == (role, vcpu)
    assert label


STATUS_XML = """<domstatus state='running' reason='booted' pid='11772'>
  <monitor path='/var/lib/libvirt/qemu/domain-3-x/monitor.sock' type='unix'/>
  <vcpus>
    <vcpu id='0' pid='11780'/>
    <vcpu id='1' pid='11781'/>
  </vcpus>
  <domain type='qemu'><name>x</name></domain>
</domstatus>"""


def test_libvirt_status_record() -> None:
    record = parse_status_xml(STATUS_XML)
    assert record.pid == 11772
    assert record.vcpu_tids == {0: 11780, 1: 11781}


def test_accelerator_from_cmdline() -> None:
    assert accelerator_from_cmdline(["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg"]) == "TCG"
    assert accelerator_from_cmdline(["qemu", "-machine", "pc-q35-7.2,accel=kvm,usb=off"]) == "KVM"
    assert accelerator_from_cmdline(["qemu", "-enable-kvm"]) == "KVM"
    assert accelerator_from_cmdline(["qemu", "-m", "64"]) is None


def _threads(*vcpus: tuple[int, int]) -> list[ThreadInfo]:
    main = ThreadInfo(tid=PID, name="qemu-system-x86", role="main", label="main")
    return [main] + [ThreadInfo(tid=tid, name=f"CPU {n}/TCG", role="vcpu", label="", vcpu=n) for n, tid in vcpus]


def test_thread_map_agrees_and_disagrees() -> None:
    threads = _threads((0, 11780), (1, 11781))
    assert check_thread_map(threads, {0: 11780, 1: 11781}, 2) == []
    assert check_thread_map(threads, {}, 2) == []  # names only: still counted
    problems = check_thread_map(threads, {0: 11780, 1: 99999}, 2)
    assert problems == ["libvirt says vCPU 1 is thread 99999, QEMU's names say 11781"]
    assert "the VM has 4 vCPUs" in check_thread_map(threads, {0: 11780, 1: 11781}, 4)[0]

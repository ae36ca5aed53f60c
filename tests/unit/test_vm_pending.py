"""Pending changes (vmdeck.vm.pending): next-boot values read beside the running ones, and vCPU counts
with room to plug more in (<vcpu current=...>) parsed and edited without losing the maximum."""

from __future__ import annotations

from pathlib import Path

from testdriver import open_test_host
from vmdeck.domxml.edit import set_resources
from vmdeck.domxml.parse import parse_domain
from vmdeck.vm.pending import apply_now, live_limits, pending_between, read_pending
from vmdeck.vm.settings import set_vm_resources

XML = """<domain type="qemu"><name>p</name><uuid>00000000-0000-0000-0000-000000000001</uuid>
<memory unit="MiB">256</memory><currentMemory unit="MiB">256</currentMemory>{vcpu}
<os><type arch="x86_64" machine="pc-q35-7.2">hvm</type></os><devices/></domain>"""


def test_a_changed_definition_shows_only_what_differs() -> None:
    live = parse_domain(XML.format(vcpu="<vcpu>1</vcpu>"))
    config = parse_domain(set_resources(XML.format(vcpu="<vcpu>1</vcpu>"), vcpus=2, memory_mib=320))
    assert pending_between(live, config) == {"vcpus": 2, "memory_mib": 320}
    assert pending_between(live, live) == {}
    assert live_limits(live) == {"vcpus_max": None}  # no room to plug vCPUs in


def test_a_vcpu_maximum_is_read_and_kept_by_a_change() -> None:
    xml = XML.format(vcpu='<vcpu placement="static" current="1">4</vcpu>')
    view = parse_domain(xml)
    assert (view.vcpus, view.max_vcpus) == (1, 4)
    assert live_limits(view) == {"vcpus_max": 4}
    edited = parse_domain(set_resources(xml, vcpus=3))
    assert (edited.vcpus, edited.max_vcpus) == (3, 4)
    beyond = parse_domain(set_resources(xml, vcpus=6))  # past the maximum: a new fixed count
    assert (beyond.vcpus, beyond.max_vcpus) == (6, 6)


def test_apply_now_plugs_vcpus_in_within_the_maximum_and_leaves_memory_pending(tmp_path: Path) -> None:
    host = open_test_host(tmp_path)
    host.conn.define(XML.format(vcpu='<vcpu current="1">4</vcpu>').replace("<devices/>", ""))
    dom = host.lookup("p")
    dom.start()
    set_vm_resources(host, "p", vcpus=2, memory_mib=320)
    assert read_pending(dom) == {"vcpus": 2, "memory_mib": 320}
    applied = apply_now(host, "p")
    assert applied.applied == {"vcpus": 2} and applied.still_pending == {"memory_mib": 320}
    assert dom.vcpu_count() == 2  # the running VM has them now
    assert read_pending(dom) == {"memory_mib": 320}

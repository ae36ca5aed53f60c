"""The last-migration record in a VM's metadata: written by libvirt's setMetadata, read from the domain XML."""

from __future__ import annotations

from pathlib import Path

from testdriver import open_test_host
from vmdeck.domxml.migration import MIGRATION_KEY, MIGRATION_NS, record_from_domain, render_record
from vmdeck.vm.inventory import show_vm


def test_record_round_trips_through_libvirt_metadata(tmp_path: Path) -> None:
    record = {"outcome": "completed", "kind": "live", "from": "qemu:///system", "to": "qemu+tcp://h2/system",
              "at": 1764170000, "total_ms": 2300, "downtime_ms": 41, "libvirt_total_ms": None}
    with open_test_host(tmp_path) as host:
        dom = host.lookup("busy")
        assert show_vm(host, "busy").last_migration is None
        dom.set_metadata(render_record(record), MIGRATION_KEY, MIGRATION_NS, live=True)
        shown = show_vm(host, "busy").to_dict()["last_migration"]
    # Numbers come back as numbers; a value that was None is simply absent.
    assert shown == {"outcome": "completed", "kind": "live", "from": "qemu:///system", "to": "qemu+tcp://h2/system",
                     "at": 1764170000, "total_ms": 2300, "downtime_ms": 41}


def test_a_domain_that_never_moved_has_no_record() -> None:
    assert record_from_domain("<domain><name>x</name><metadata/></domain>") is None

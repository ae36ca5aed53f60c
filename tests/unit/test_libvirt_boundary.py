"""The libvirt boundary (vmdeck.host.libvirt_api) on libvirt's test driver: every failure leaves as a
vmdeck error carrying libvirt's reason, and the wrappers speak in words, not flags."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testdriver import open_test_host
from vmdeck.errors import Conflict, HostError, InvalidInput, NotFound
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import open_connection


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    with open_test_host(tmp_path) as opened:
        yield opened


def test_not_found_is_vmdecks(host: Host) -> None:
    with pytest.raises(NotFound, match="no VM named 'ghost'"):
        host.conn.lookup("ghost")
    with pytest.raises(NotFound) as pool:
        host.conn.pool("no-such-pool")
    assert pool.value.reason == "no_storage_pool" and "no-such-pool" in pool.value.libvirt_text
    assert not host.conn.has_network("no-such-network")


def test_wrong_state_is_a_conflict_with_libvirts_reason(host: Host) -> None:
    dom = host.lookup("busy")
    assert dom.state() == ("running", None)
    dom.poweroff()
    assert dom.state()[0] == "shut off" and not dom.is_active()
    with pytest.raises(Conflict) as again:
        dom.poweroff()  # not running any more
    assert again.value.reason == "operation_invalid"
    assert str(again.value).startswith("poweroff busy: ")


def test_bad_xml_is_invalid_input(host: Host) -> None:
    with pytest.raises(InvalidInput):
        host.conn.define("<domain type='test'><name>x</name></domain>", validate=True)


def test_metadata_absent_is_none_and_round_trips(host: Host) -> None:
    dom = host.lookup("busy")
    ns = "https://example.org/vmdeck-test"
    assert dom.metadata(ns, live=True) is None
    dom.set_metadata("<vm><a>1</a></vm>", "t", ns, live=True)
    assert "<a>1</a>" in (dom.metadata(ns, live=True) or "")


def test_bulk_stats_and_lists_return_wrappers(host: Host) -> None:
    records = host.conn.domain_stats(("state", "vcpu"))
    assert [(d.name, s["state.state"]) for d, s in records] == [("busy", 1)]
    assert [d.name for d in host.conn.domains(active=True)] == ["busy"]
    assert host.conn.domains(transient=True) == []


def test_unreachable_libvirtd_is_host_error(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="cannot connect to libvirt"):
        open_connection(f"qemu+unix:///system?socket={tmp_path}/none")

"""Disk configuration from the live XML, page-cache residency via mincore, and pin/balloon input checks
(pinning and ballooning run against libvirt's test driver with its own node)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testdriver import open_test_host
from vmdeck.errors import InvalidInput, StateError
from vmdeck.hostview.balloon import set_balloon
from vmdeck.hostview.pin import cpumap, pin_emulator, pin_vcpu
from vmdeck.hostview.storage import disks_from_xml, page_cache_bytes, read_disks

LIVE_XML = """<domain type='qemu'><name>x</name><devices>
  <disk type='file' device='disk'>
    <driver name='qemu' type='qcow2' cache='none' io='native'/>
    <source file='/pool/top.qcow2' index='3'/>
    <backingStore type='file' index='2'>
      <format type='qcow2'/>
      <source file='/pool/mid.qcow2'/>
      <backingStore type='file' index='1'>
        <format type='raw'/>
        <source file='/pool/base.raw'/>
        <backingStore/>
      </backingStore>
    </backingStore>
    <target dev='vda' bus='virtio'/>
  </disk>
  <disk type='file' device='cdrom'>
    <driver name='qemu'/>
    <target dev='sda' bus='scsi'/>
    <readonly/>
  </disk>
</devices></domain>"""


def test_disks_from_live_xml() -> None:
    vda, sda = disks_from_xml(LIVE_XML)
    assert (vda.target, vda.format, vda.cache, vda.io) == ("vda", "qcow2", "none", "native")
    assert "bypasses the host page cache" in vda.cache_meaning
    assert [(b.path, b.format) for b in vda.backing_chain] == [("/pool/mid.qcow2", "qcow2"), ("/pool/base.raw", "raw")]
    assert sda.path is None and sda.cache == "default" and "writeback" in sda.cache_meaning


def test_read_disks_takes_counters_from_bulk_stats(tmp_path: Path) -> None:
    image = tmp_path / "top.qcow2"
    image.write_bytes(os.urandom(64 * 1024))
    stats = {"block.count": 2, "block.0.name": "vda", "block.0.rd.reqs": 2, "block.0.rd.bytes": 4608,
             "block.0.wr.reqs": 9, "block.0.wr.bytes": 65536, "block.0.capacity": 1 << 30,
             "block.1.name": "sda", "block.1.rd.reqs": 0}
    vda, sda = read_disks(LIVE_XML.replace("/pool/top.qcow2", str(image)), stats)
    assert (vda.read_reqs, vda.read_bytes, vda.write_reqs, vda.write_bytes) == (2, 4608, 9, 65536)
    assert vda.virtual_size_bytes == 1 << 30
    assert vda.file_size_bytes == 64 * 1024 and vda.host_allocated_bytes and vda.host_allocated_bytes >= 64 * 1024
    assert sda.read_reqs == 0 and sda.host_allocated_bytes is None


def test_page_cache_residency(tmp_path: Path) -> None:
    path = tmp_path / "image.raw"
    path.write_bytes(os.urandom(256 * 1024))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # written pages stay cached; drop them to see residency fall
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        dropped = page_cache_bytes(str(path))
        os.read(fd, 256 * 1024)
        read_back = page_cache_bytes(str(path))
    finally:
        os.close(fd)
    assert dropped is not None and read_back is not None
    assert read_back == (256 * 1024, 256 * 1024)
    assert dropped[0] < read_back[0]
    assert page_cache_bytes(str(tmp_path / "missing")) is None


def test_cpumap_validation() -> None:
    assert cpumap("1", 2) == (False, True)
    assert cpumap("0,2-3", 4) == (True, False, True, True)
    with pytest.raises(InvalidInput, match="does not exist"):
        cpumap("4", 4)
    with pytest.raises(InvalidInput, match="invalid CPU list"):
        cpumap("one", 4)


def test_pin_checks_and_balloon_on_the_test_driver(tmp_path: Path) -> None:
    # libvirt's test driver rejects AFFECT_LIVE for pinning (it only knows "current"), so the pinning
    # itself is proven on a real VM (tests/integration/test_hostview.py); here: the input checks.
    host = open_test_host(tmp_path)
    with pytest.raises(InvalidInput, match="does not exist"):
        pin_emulator(host, "busy", "9")
    with pytest.raises(InvalidInput, match="has vCPUs 0-0"):
        pin_vcpu(host, "busy", 3, "1")
    assert set_balloon(host, "busy", 128) == 128 * 1024
    assert host.lookup("busy").raw.info()[2] == 128 * 1024
    with pytest.raises(InvalidInput, match="more than"):
        set_balloon(host, "busy", 4096)
    with pytest.raises(InvalidInput, match="at least"):
        set_balloon(host, "busy", 1)
    host.lookup("busy").raw.destroy()
    with pytest.raises(StateError, match="shut off"):
        set_balloon(host, "busy", 128)
    with pytest.raises(StateError, match="persist"):
        pin_vcpu(host, "busy", 0, "1")

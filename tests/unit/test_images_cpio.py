"""The newc cpio writer behind the tiny initramfs."""

from __future__ import annotations

import gzip
import stat
import subprocess

import pytest

from vmdeck.images import cpio


def _tree() -> cpio.Tree:
    t = cpio.Tree()
    t.file("etc/rc", "#!/bin/sh\necho hi\n", 0o755)
    t.symlink("bin/sh", "busybox")
    t.chardev("dev/console", 5, 1)
    t.dir("tmp", 0o1777)
    return t


def test_tree_creates_parents_in_order() -> None:
    paths = [e.path for e in _tree().entries()]
    assert paths.index("etc") < paths.index("etc/rc")
    assert paths.index("bin") < paths.index("bin/sh")
    assert paths.index("dev") < paths.index("dev/console")


def test_round_trip_and_alignment() -> None:
    blob = cpio.newc_bytes(_tree().entries())
    assert len(blob) % 4 == 0
    entries = {e.path: e for e in cpio.read_newc(blob)}
    assert entries["etc/rc"].data == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE(entries["etc/rc"].mode) == 0o755
    assert stat.S_ISLNK(entries["bin/sh"].mode) and entries["bin/sh"].data == b"busybox"
    assert stat.S_ISCHR(entries["dev/console"].mode) and entries["dev/console"].rdev == (5, 1)
    assert stat.S_IMODE(entries["tmp"].mode) == 0o1777


def test_gzip_is_reproducible() -> None:
    a = cpio.gzip_newc(_tree().entries())
    assert a == cpio.gzip_newc(_tree().entries())
    assert gzip.decompress(a).startswith(b"070701")


def test_rejects_escaping_paths() -> None:
    with pytest.raises(ValueError):
        cpio.Tree().file("../etc/passwd", "x")


def test_gnu_cpio_reads_our_archive() -> None:
    blob = cpio.newc_bytes(_tree().entries())
    out = subprocess.run(["cpio", "-t", "-v"], input=blob, capture_output=True, check=True).stdout.decode()
    assert "etc/rc" in out and "bin/sh -> busybox" in out and "dev/console" in out

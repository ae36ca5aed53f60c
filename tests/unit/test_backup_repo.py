"""The backup repository's pure parts: manifests that notice a flipped byte, publication by rename,
retention buckets, schedule periods."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmdeck.errors import InvalidInput, NotFound
from vmdeck.storage.backup_repo import BackupFile, Manifest, Repository, decode_manifest, sha256_of
from vmdeck.store.backups import parse_every
from vmdeck.vm.backup_ops import retained


def _manifest(backup_id: str, created: str, parent: str | None = None) -> Manifest:
    return Manifest(id=backup_id, vm="web1", uuid="u", project="alpha", host="qemu:///system", created=created,
                    kind="incremental" if parent else "full", parent=parent, checkpoint=None, state="running",
                    quiesced=False, reason="r", domain_xml="<domain/>",
                    files=(BackupFile("disk-vda.qcow2", "disk", 3, "ab" * 32, "vda"),))


def test_manifest_round_trip_and_one_flipped_byte() -> None:
    raw = _manifest("a", "2026-12-06T10:00:00Z").encode()
    decoded, intact = decode_manifest(raw, "a")
    assert intact and decoded == _manifest("a", "2026-12-06T10:00:00Z")
    for where in (30, len(raw) // 2, len(raw) - 3):
        flipped = bytearray(raw)
        flipped[where] ^= 0x01
        try:
            _, intact = decode_manifest(bytes(flipped), "a")
        except Exception:  # unreadable JSON is found too
            continue
        assert not intact, where


def test_a_backup_exists_only_once_published(tmp_path: Path) -> None:
    repo = Repository(tmp_path)
    partial = repo.begin("web1-1")
    partial.file("disk-vda.qcow2").write_bytes(b"abc")
    assert repo.ids() == [] and [p.backup_id for p in repo.partials()] == ["web1-1"]
    assert repo.partials()[0].alive  # this process writes it
    with pytest.raises(NotFound):
        repo.load("web1-1")
    manifest = _manifest("web1-1", "2026-12-06T10:00:00Z")
    partial.publish(manifest)
    assert repo.ids() == ["web1-1"] and repo.partials() == []
    assert repo.load("web1-1") == manifest
    assert sha256_of(repo.folder("web1-1") / "disk-vda.qcow2") == sha256_of(tmp_path / "web1-1" / "disk-vda.qcow2")
    repo.remove("web1-1")
    assert repo.ids() == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(InvalidInput):
        repo.folder("../etc")


def test_chain_names_a_missing_ancestor(tmp_path: Path) -> None:
    repo = Repository(tmp_path)
    repo.begin("b").publish(_manifest("b", "2026-12-06T11:00:00Z", parent="a"))
    with pytest.raises(NotFound, match="needs a"):
        repo.chain(repo.load("b"))


def test_retention_keeps_last_daily_weekly() -> None:
    # Two backups a day, 6:00 and 18:00, from Tuesday 2026-12-01 to Monday 2026-12-14.
    days = [_manifest(f"d{i}-{h}", f"2026-12-{i:02d}T{h:02d}:00:00Z") for i in range(1, 15) for h in (6, 18)]
    assert retained(days, 3) == {"d14-18", "d14-6", "d13-18"}
    assert retained(days, 1, keep_daily=3) == {"d14-18", "d13-18", "d12-18"}
    # ISO weeks: the 14th is a Monday (week 51 starts), the 7th-13th is week 50.
    assert retained(days, 1, keep_weekly=2) == {"d14-18", "d13-18"}
    assert retained(days, 1, keep_weekly=3) == {"d14-18", "d13-18", "d6-18"}


def test_schedule_periods() -> None:
    assert parse_every("6h") == 6 * 3600 and parse_every("daily") == 86400 and parse_every("30m") == 1800
    for bad in ("6x", "0h", "1m", "", "h"):
        with pytest.raises(InvalidInput):
            parse_every(bad)

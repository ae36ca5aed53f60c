"""The journal of work in flight and vmdeck's temporary file names (no libvirt needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vmdeck.errors import HostError
from vmdeck.storage.journal import Journal, process_token, read_entries, stale_entries, temp_owner, temp_path


@pytest.fixture(autouse=True)
def _data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMDECK_DATA_DIR", str(tmp_path))


def test_temp_names_carry_their_writer(tmp_path: Path) -> None:
    partial = temp_path(tmp_path / "my.iso")
    assert partial.parent == tmp_path and partial.name.startswith(".my.iso.vmdeck-")
    assert temp_owner(partial) == ("my.iso", process_token())
    assert temp_owner(tmp_path / ".my.iso.part") == ("my.iso", None)  # the old upload name: no writer
    assert temp_owner(tmp_path / "my.iso") is None
    assert temp_owner(tmp_path / "notes.part") is None  # not hidden: not ours


def test_a_finished_operation_leaves_no_record() -> None:
    with Journal("create", "web1") as journal:
        journal.volume("web1-vda.qcow2")
        assert [e.volumes for e in read_entries()] == [["web1-vda.qcow2"]]
        assert stale_entries() == []  # this process is alive
    assert read_entries() == []


def test_a_failed_rollback_hands_the_record_to_doctor() -> None:
    with pytest.raises(RuntimeError), Journal("create", "web1") as journal:
        journal.volume("web1-vda.qcow2")
        raise RuntimeError("rollback failed")
    [entry] = stale_entries()
    assert entry.vm == "web1" and entry.pid == 0 and entry.volumes == ["web1-vda.qcow2"]


def test_a_killed_process_leaves_a_stale_record(tmp_path: Path) -> None:
    code = ("from vmdeck.storage.journal import Journal; import os; "
            "j = Journal('create', 'web2').__enter__(); j.volume('web2-vda.qcow2'); os._exit(9)")
    subprocess.run([sys.executable, "-c", code], check=False, env={**os.environ, "VMDECK_DATA_DIR": str(tmp_path)})
    [entry] = stale_entries()
    assert entry.vm == "web2" and entry.volumes == ["web2-vda.qcow2"] and not entry.alive
    assert json.loads(entry.path.read_text())["operation"] == "create"


def test_an_unwritable_journal_is_a_host_error(tmp_path: Path) -> None:
    (tmp_path / "journal").write_text("not a folder")
    with pytest.raises(HostError, match="cannot write vmdeck's journal"), Journal("create", "web3"):
        pass

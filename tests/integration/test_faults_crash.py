"""SIGKILL in the middle of creating a VM and of uploading an ISO: afterwards either nothing half-made
is left, or `vmdeck doctor` reports it and `vmdeck doctor --fix` removes it (real libvirtd, real serve).

Each test uses its own VMDECK_DATA_DIR (journal, ISO library), so doctor only ever sees its own
records; volumes go to vmdeck's real pool.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faults_support import PREFIX, VMDECK, Serve, scratch_dir
from lxml import etree

from vmdeck.host.connection import Host
from vmdeck.storage.pool import POOL_NAME
from vmdeck.vm import lifecycle
from vmdeck.vm.inventory import show_vm


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = scratch_dir("vmdeck-test-faults-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _vmdeck(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VMDECK_DATA_DIR": str(data), "COLUMNS": "200"}
    return subprocess.run([*VMDECK, *args], capture_output=True, text=True, timeout=300, env=env)


def _doctor(data: Path, *flags: str) -> dict[str, list[dict[str, object]]]:
    result = _vmdeck(data, "doctor", "--json", *flags)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _mine(report: dict[str, list[dict[str, object]]], key: str, needle: str) -> list[dict[str, object]]:
    # The pool is shared with other test runs: look only at what names our VM or our data dir.
    return [f for f in report[key] if needle in str(f["path"]) or needle in str(f["reason"])]


def test_sigkill_mid_create_leaves_nothing_or_doctor_fixes_it(host: Host, data_dir: Path) -> None:
    pool = host.conn.pool(POOL_NAME)
    pool_path = Path(etree.fromstring(pool.xml().encode()).findtext("target/path"))
    outcomes = []
    for _attempt in range(6):
        name = f"{PREFIX}crash-{uuid.uuid4().hex[:6]}"
        volume = pool_path / f"{name}-vda.qcow2"
        env = {**os.environ, "VMDECK_DATA_DIR": str(data_dir)}
        process = subprocess.Popen([*VMDECK, "create", name, "-t", "q35-virtio", "--accel", "tcg", "--disk", "1"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        # Kill the moment the volume exists: the VM is not defined yet (or only just).
        deadline = time.monotonic() + 120
        while not volume.exists() and process.poll() is None and time.monotonic() < deadline:
            pass
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        if host.exists(name):
            outcomes.append("complete")
            # Defined in time: a whole VM that owns its volume; nothing for doctor to remove.
            assert str(volume) in show_vm(host, name).to_dict()["owned_volumes"]
            assert not _mine(_doctor(data_dir), "findings", str(volume))
            lifecycle.delete(host, name, force=True)
        else:
            outcomes.append("orphan")
            report = _doctor(data_dir)
            kinds = {f["kind"] for f in _mine(report, "findings", name)}
            if volume.exists():
                assert "volume" in kinds, report
            assert "record" in kinds and all(f["fixable"] for f in _mine(report, "findings", name)), report
            fixed = _doctor(data_dir, "--fix")
            assert {f["kind"] for f in _mine(fixed, "removed", name)} == kinds
            pool.refresh()
            assert not volume.exists() and not list((data_dir / "journal").glob("*.json"))
            assert not _mine(_doctor(data_dir), "findings", name)
            # The name is free again: a new create is not blocked by a leftover volume.
            again = _vmdeck(data_dir, "create", name, "-t", "q35-virtio", "--accel", "tcg", "--disk", "1")
            assert again.returncode == 0, again.stderr
            lifecycle.delete(host, name, force=True)
            break
    assert "orphan" in outcomes, outcomes


def _slow_body(chunks: int, started: threading.Event) -> Iterator[bytes]:
    for index in range(chunks):
        if index == 2:
            started.set()
        yield b"\0" * (1 << 20)
        time.sleep(0.2)


def test_sigkill_mid_upload_leaves_no_iso_and_doctor_removes_the_part(data_dir: Path) -> None:
    serve = Serve(data_dir)
    try:
        serve.start()
        started = threading.Event()
        errors: list[BaseException] = []

        def upload() -> None:
            try:
                with serve.client() as api:
                    api.put("/api/isos/big.iso", content=_slow_body(600, started))
            except httpx.HTTPError as err:
                errors.append(err)

        worker = threading.Thread(target=upload)
        worker.start()
        assert started.wait(60)
        isos = data_dir / "isos"
        deadline = time.monotonic() + 60
        while not [p for p in isos.glob(".big.iso.vmdeck-*.part") if p.stat().st_size > 0]:
            assert time.monotonic() < deadline, list(isos.iterdir())
            time.sleep(0.05)
        serve.kill()
        worker.join(60)
        assert errors, "the upload cannot have succeeded"
        # No half ISO under its real name; the temporary file names its dead writer.
        assert not (isos / "big.iso").exists()
        parts = list(isos.glob(".big.iso.vmdeck-*.part"))
        assert len(parts) == 1
        report = _doctor(data_dir)
        assert [(f["kind"], f["path"], f["fixable"]) for f in report["findings"] if f["kind"] != "unused-volume"] \
            == [("temp-file", str(parts[0]), True)]
        assert "which is gone" in report["findings"][0]["reason"]
        _doctor(data_dir, "--fix")
        assert list(isos.iterdir()) == []

        # After a restart the same upload goes through, whole, under its name.
        serve.start()
        with serve.client() as api:
            # An ISO 9660 header (the server checks for one) in a 3 MiB body.
            body = bytes(16 * 2048) + b"\1CD001\1" + bytes((3 << 20) - 16 * 2048 - 7)
            reply = api.put("/api/isos/big.iso", content=body)
            assert reply.status_code == 201, reply.text
            assert reply.json()["size_bytes"] == 3 << 20
        assert sorted(p.name for p in isos.iterdir()) == ["big.iso"]
    finally:
        serve.stop()


def test_doctor_on_a_clean_data_dir(data_dir: Path) -> None:
    result = _vmdeck(data_dir, "doctor")
    assert result.returncode == 0, result.stderr
    assert "fixable" not in result.stdout and "removed" not in result.stdout



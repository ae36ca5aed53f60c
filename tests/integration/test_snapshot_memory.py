"""`--memory` and `--quiesce` snapshots on a real VM: a revert resumes the very same boot.

A counter process in the guest is the witness: after the revert it is alive again (it was killed
after the snapshot), counts on from where it was, and the guest's boot id has not changed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from itest_support import wait_for

from vmdeck.host.connection import Host
from vmdeck.paths import pool_dir
from vmdeck.vm import lifecycle

# The counter publishes each value by rename, so a reader never sees the file between a
# truncation and a write (`echo > file` would let `cat` read an empty file).
COUNTER = ('setsid /bin/sh -c "i=0; while true; do i=\\$((i+1)); echo \\$i > /run/counter.new; '
           'mv /run/counter.new /run/counter; sleep 1; done" '
           "</dev/null >/dev/null 2>&1 & echo $!")


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _sh(run_in_guest: Callable, vm: str, command: str) -> str:
    result = run_in_guest(vm, command)
    assert result.exit_code == 0, result.stderr
    return str(result.stdout.decode().strip())


def _counter(run_in_guest: Callable, vm: str) -> int:
    return int(_sh(run_in_guest, vm, "cat /run/counter"))


def test_memory_snapshot_resumes_the_same_boot(vm_factory: Callable, run_in_guest: Callable, cli: Callable,
                                               host: Host) -> None:
    vm = vm_factory("tiny")
    boot_id = _sh(run_in_guest, vm, "cat /proc/sys/kernel/random/boot_id")
    pid = _sh(run_in_guest, vm, COUNTER)
    wait_for(lambda: _counter(run_in_guest, vm) >= 2)

    # --quiesce: the guest agent (qemu-ga 7.2 in the tiny guest supports guest-fsfreeze-*) freezes
    # the guest's filesystems around the switch to the new overlays.
    _ok(cli("snapshot", "create", vm, "q1", "--quiesce"))
    quiesced = json.loads(_ok(cli("snapshot", "list", vm, "--json")))["snapshots"]
    assert quiesced[0]["quiesced"] is True

    _ok(cli("snapshot", "create", vm, "m1", "--memory", "--description", "counter running"))
    at_snapshot = _counter(run_in_guest, vm)
    memory_file = Path(json.loads(_ok(cli("snapshot", "list", vm, "--json")))["snapshots"][1]["memory"])
    assert memory_file.exists()

    # Change the running guest: stop the counter, leave a marker.
    _sh(run_in_guest, vm, f"kill {pid}; echo changed > /run/marker")
    # Revert resumes the VM where the snapshot left it: no boot, counter alive, marker gone.
    out = _ok(cli("snapshot", "revert", vm, "m1"))
    assert "running" in out
    assert lifecycle.current_state(host.lookup(vm)) == "running"
    assert wait_for(lambda: _sh(run_in_guest, vm, "cat /proc/sys/kernel/random/boot_id")) == boot_id
    assert _sh(run_in_guest, vm, f"test -d /proc/{pid} && echo alive") == "alive"
    assert _sh(run_in_guest, vm, "test -e /run/marker || echo gone") == "gone"
    after = _counter(run_in_guest, vm)
    assert after >= at_snapshot - 1  # the value at the instant of the snapshot, or later
    assert wait_for(lambda: _counter(run_in_guest, vm) > after)  # and it keeps counting

    for path in pool_dir().iterdir():
        if path.name.startswith(vm) and path.suffix == ".qcow2":
            subprocess.run(["qemu-img", "check", "-U", str(path)], check=True, capture_output=True)

    # Deleting the snapshot deletes its memory file; quiesce needs a running VM.
    _ok(cli("snapshot", "delete", vm, "m1"))
    assert not memory_file.exists()
    lifecycle.poweroff(host, vm)
    refused = cli("snapshot", "create", vm, "q2", "--quiesce")
    assert refused.returncode == 4 and "running" in refused.stderr

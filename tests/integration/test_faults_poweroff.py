"""Forced power-off while the guest writes: 20 cycles of `poweroff` (QEMU killed, no guest shutdown) in
the middle of a write loop on the VM's qcow2 disk. After each, `qemu-img check` finds no corruption, and
what the guest had fsync'ed before the power cut is still on the disk. One VM serves all cycles."""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import time
from collections.abc import Callable

from itest_support import wait_for

from vmdeck.domxml.parse import parse_domain
from vmdeck.errors import GuestError
from vmdeck.host.connection import Host
from vmdeck.vm import lifecycle
from vmdeck.vm.create import serial_log_path

CYCLES = 20
# 64 KiB blocks: the loop rewrites the first 256 MiB; the fsync'ed token sits at 300 MiB, out of its way.
LOOP = ("i=0; while :; do dd if=/dev/urandom of=/dev/vda bs=64k count=16 seek=$(( (i * 16) % 4096 ))"
        " conv=fsync 2>/dev/null; i=$((i + 7)); done")
TOKEN_AT = 4800  # in 64 KiB blocks


def _writes_done(run_in_guest: Callable, vm: str) -> int:
    # /sys/block/vda/stat field 5: write I/Os completed.
    return int(run_in_guest(vm, "cat /sys/block/vda/stat").stdout.split()[4])


def _check(path: str) -> dict[str, int]:
    done = subprocess.run(["qemu-img", "check", "-f", "qcow2", "--output=json", path],
                          capture_output=True, text=True, timeout=300)
    # Exit 0: clean; 3: only leaked clusters (space, never data); 2: corruption; 1: check failed.
    assert done.returncode in (0, 3), (done.returncode, done.stdout, done.stderr)
    report = json.loads(done.stdout)
    assert report.get("corruptions", 0) == 0 and report.get("check-errors", 0) == 0, report
    return {"leaks": report.get("leaks", 0), "allocated": report.get("allocated-clusters", 0)}


def _boot(host: Host, vm: str, retries: list[str]) -> None:
    """Start and wait for the guest. On a heavily loaded host the guest kernel can panic in its
    IO-APIC timer check ("IO-APIC + timer doesn't work!"), before it ever touches the disk: that
    boot is retried (and reported), any other failure is not."""
    for _attempt in range(3):
        try:
            lifecycle.start(host, vm, wait=True, timeout=300)
            return
        except GuestError:
            serial = serial_log_path(vm).read_text(errors="replace")
            if "IO-APIC + timer doesn't work" not in serial:
                raise
            retries.append("IO-APIC timer panic at boot")
            lifecycle.poweroff(host, vm)
    raise AssertionError(f"the guest did not boot: {retries}")


def test_poweroff_while_writing_keeps_qcow2_consistent(vm_factory: Callable, run_in_guest: Callable,
                                                       host: Host) -> None:
    vm = vm_factory("tiny", memory_mib=192)
    disk = parse_domain(host.lookup(vm).xml()).owned_volumes[0]
    leaks = []
    boot_retries: list[str] = []
    rng = random.Random(8)
    began = time.monotonic()
    for cycle in range(CYCLES):
        token = secrets.token_hex(16)
        wrote = run_in_guest(vm, f"printf {token} | dd of=/dev/vda bs=64k seek={TOKEN_AT} conv=fsync,sync")
        assert wrote.exit_code == 0, wrote.stderr
        started = run_in_guest(vm, f"setsid sh -c '{LOOP}' </dev/null >/dev/null 2>&1 &")
        assert started.exit_code == 0, started.stderr
        # Writes are in flight: the guest's count of completed writes grows.
        before = _writes_done(run_in_guest, vm)
        deadline = time.monotonic() + 120
        while _writes_done(run_in_guest, vm) <= before + 2:
            assert time.monotonic() < deadline, "the write loop does not write"
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 1.5))
        lifecycle.poweroff(host, vm)
        leaks.append(_check(disk)["leaks"])
        print(f"cycle {cycle + 1}: powered off mid-write, qemu-img check clean ({time.monotonic() - began:.0f} s)")
        _boot(host, vm, boot_retries)
        # The serial console says ready before the agent connects: wait for the agent too.
        kept = wait_for(lambda: run_in_guest(vm, f"dd if=/dev/vda bs=64k skip={TOKEN_AT} count=1 2>/dev/null"
                                                 " | head -c 32").stdout.decode(), timeout=300)
        assert kept == token, "data fsync'ed before the power cut is gone"
    print(f"\n{CYCLES} forced power-offs mid-write: 0 corruptions; leaked clusters per check: {leaks}; "
          f"boots retried: {boot_retries or 'none'}")

"""An emulated TPM 2.0 on a real libvirtd: the guest sees it, its measurements are the same after a power cycle,
its state is kept per VM on the host, copied by a clone and removed with the VM."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from itest_support import PREFIX, READY_TIMEOUT_S, delete_vm, wait_for

from vmdeck.host.connection import Host
from vmdeck.vm import lifecycle
from vmdeck.vm.clone import clone_vm
from vmdeck.vm.tpm import tpm_state_dir

PCRS = "for i in 0 1 2 3 4 5 6 7; do cat /sys/class/tpm/tpm0/pcr-sha256/$i; done"


def _pcrs(run_in_guest: Callable, vm: str) -> list[str]:
    result = run_in_guest(vm, PCRS)
    return result.stdout.decode().split() if result.exit_code == 0 else []


def test_tpm_seen_by_the_guest_kept_cloned_and_removed(vm_factory: Callable, run_in_guest: Callable,
                                                       host: Host) -> None:
    vm = vm_factory("tiny", tpm=True, suffix="tpm")
    assert run_in_guest(vm, "cat /sys/class/tpm/tpm0/tpm_version_major").stdout.decode().strip() == "2"
    before = _pcrs(run_in_guest, vm)
    # SeaBIOS measured the boot into the PCRs: not all zero, and the same boot measures the same again.
    assert len(before) == 8 and any(set(value) != {"0"} for value in before)
    state = tpm_state_dir(host.lookup(vm).uuid())
    assert (state / "tpm2" / "tpm2-00.permall").is_file()
    permanent = (state / "tpm2" / "tpm2-00.permall").read_bytes()

    lifecycle.poweroff(host, vm)
    lifecycle.start(host, vm, wait=True, timeout=READY_TIMEOUT_S)
    assert wait_for(lambda: _pcrs(run_in_guest, vm) == before, timeout=120)
    lifecycle.poweroff(host, vm)
    # The TPM's permanent state (its seeds, hence its endorsement key) outlived the power cycle.
    assert (state / "tpm2" / "tpm2-00.permall").read_bytes()[:64] == permanent[:64]

    clone = f"{PREFIX}tpmclone-{uuid.uuid4().hex[:6]}"
    try:
        clone_vm(host, vm, clone)
        cloned = tpm_state_dir(host.lookup(clone).uuid())
        assert cloned != state
        assert (cloned / "tpm2" / "tpm2-00.permall").read_bytes() == (state / "tpm2" / "tpm2-00.permall").read_bytes()
        assert (cloned / "tpm2").stat().st_uid == (state / "tpm2").stat().st_uid
        lifecycle.start(host, clone, wait=True, timeout=READY_TIMEOUT_S)
        assert run_in_guest(clone, "cat /sys/class/tpm/tpm0/tpm_version_major").stdout.decode().strip() == "2"
    finally:
        delete_vm(host, clone)
    assert not cloned.exists()
    delete_vm(host, vm)
    assert not state.exists()

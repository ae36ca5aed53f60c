"""An emulated TPM 2.0 on a real libvirtd: the guest sees it, its measurements are the same after a power cycle,
its state is kept per VM on the host, copied by a clone, carried by a live migration and removed with the VM."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from itest_support import PREFIX, READY_TIMEOUT_S, delete_vm, wait_for
from nshosts import NamespaceHost, start_hosts, stop_hosts

from vmdeck.host.connection import Host
from vmdeck.vm import lifecycle
from vmdeck.vm.agent import guest_exec
from vmdeck.vm.clone import clone_vm
from vmdeck.vm.migrate import migrate
from vmdeck.vm.tpm import tpm_state_dir

PCRS = "for i in 0 1 2 3 4 5 6 7; do cat /sys/class/tpm/tpm0/pcr-sha256/$i; done"


def _pcrs(run_in_guest: Callable, vm: str) -> list[str]:
    result = run_in_guest(vm, PCRS)
    return result.stdout.decode().split() if result.exit_code == 0 else []


def test_tpm_seen_by_the_guest_kept_cloned_and_removed(vm_factory: Callable, run_in_guest: Callable,
                                                       host: Host, cli: Callable) -> None:
    vm = vm_factory("tiny", tpm=True, suffix="tpm")
    assert run_in_guest(vm, "cat /sys/class/tpm/tpm0/tpm_version_major").stdout.decode().strip() == "2"
    before = _pcrs(run_in_guest, vm)
    # SeaBIOS measured the boot into the PCRs: not all zero, and the same boot measures the same again.
    assert len(before) == 8 and any(set(value) != {"0"} for value in before)
    state = tpm_state_dir(host.lookup(vm).uuid())
    assert (state / "tpm2" / "tpm2-00.permall").is_file()
    # The host view shows the swtpm process beside QEMU, and the state it keeps.
    seen = json.loads(cli("hostview", vm, "--json").stdout)["vms"][0]["tpm"]
    assert (seen["version"], seen["state_dir"]) == ("2.0", str(state)) and seen["state_bytes"] > 0
    assert "swtpm" in Path(f"/proc/{seen['swtpm_pid']}/cmdline").read_text()
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
        assert (cloned / "tpm2").stat().st_uid == (state / "tpm2").stat().st_uid  # swtpm (tss) can write it
    finally:
        delete_vm(host, clone)
    assert not cloned.exists()
    delete_vm(host, vm)
    assert not state.exists()


def test_windows_template_boots_uefi_with_secure_boot_and_a_tpm(vm_factory: Callable, host: Host) -> None:
    """The windows template under TCG: libvirt picks Debian's Secure Boot firmware with Microsoft's keys
    (OVMF_CODE_4M.ms.fd + a copy of OVMF_VARS_4M.ms.fd), SMM on, and the TPM's swtpm runs."""
    vm = vm_factory("windows", wait=False, suffix="win", disk_gib=0.1, memory_mib=512)
    live = host.lookup(vm).xml()
    assert "<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>" in live
    assert "OVMF_VARS_4M.ms.fd" in live and "<smm state='on'/>" in live
    assert "<tpm model='tpm-crb'>" in live
    nvram = live.split("<nvram", 1)[1].split(">", 1)[1].split("<", 1)[0]
    # The VM's own variable store starts as Debian's, keys enrolled: it is not the empty template.
    assert Path(nvram).read_bytes() == Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd").read_bytes()
    assert wait_for(lambda: (tpm_state_dir(host.lookup(vm).uuid()) / "tpm2").is_dir(), timeout=60)


@pytest.fixture(scope="module")
def second_ns(host: Host) -> Iterator[NamespaceHost]:
    """A second libvirt host in its own namespaces (tests/integration/nshosts.py): its /var/lib/libvirt is its own."""
    (ns_host,) = start_hosts(host, 1)
    try:
        yield ns_host
    finally:
        stop_hosts([ns_host])


def test_tpm_state_follows_a_live_migration(vm_factory: Callable, host: Host, second_ns: NamespaceHost) -> None:
    vm = vm_factory("tiny", tpm=True, suffix="tpmmig")

    def pcrs(where: Host) -> list[str]:
        result = guest_exec(where.lookup(vm), ["/bin/sh", "-c", PCRS], timeout=60)
        return result.stdout.decode().split() if result.exit_code == 0 else []

    before = wait_for(lambda: pcrs(host), timeout=120)
    with second_ns.connect() as dest:
        try:
            migrate(host, vm, dest.uri, migrate_uri=f"tcp://{second_ns.addr}")
            # The destination's swtpm answers with the source's PCRs: the TPM's state came along in
            # QEMU's migration stream (a fresh TPM would read all zeros: nothing measured it).
            assert wait_for(lambda: pcrs(dest), timeout=300) == before
        finally:
            delete_vm(dest, vm)  # with its disk and TPM state on the destination

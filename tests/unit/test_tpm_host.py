"""The TPM seen from the host: a domain's emulated TPM from its XML, and its swtpm found among processes."""

from __future__ import annotations

from pathlib import Path

from vmdeck.domxml.tpm import emulated_tpm_version
from vmdeck.hostview.tpm import read_tpm

UUID = "214e30d5-2450-4aac-8ddd-f99dc41d7e7e"
WITH_TPM = ("<domain><devices><tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm></devices>"
            "</domain>")


def _process(proc: Path, pid: int, comm: str, cmdline: list[str], rss_kib: int) -> None:
    folder = proc / str(pid)
    folder.mkdir(parents=True)
    (folder / "comm").write_text(comm + "\n")
    (folder / "cmdline").write_bytes(b"\0".join(part.encode() for part in cmdline) + b"\0")
    (folder / "status").write_text(f"Name:\t{comm}\nVmRSS:\t   {rss_kib} kB\n")


def test_emulated_tpm_version() -> None:
    assert emulated_tpm_version(WITH_TPM) == "2.0"
    assert emulated_tpm_version("<domain><devices/></domain>") is None
    passthrough = "<domain><devices><tpm model='tpm-tis'><backend type='passthrough'/></tpm></devices></domain>"
    assert emulated_tpm_version(passthrough) is None


def test_swtpm_found_by_its_state_folder(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _process(proc, 10, "swtpm", ["/usr/bin/swtpm", "socket", "--tpmstate",
                                 "dir=/var/lib/libvirt/swtpm/other-uuid/tpm2,mode=0600"], 100)
    _process(proc, 11, "qemu-system-x86", ["qemu", f"/swtpm/{UUID}/"], 9000)
    _process(proc, 12, "swtpm", ["/usr/bin/swtpm", "socket", "--tpmstate",
                                 f"dir=/var/lib/libvirt/swtpm/{UUID}/tpm2,mode=0600"], 6668)
    seen = read_tpm(WITH_TPM, UUID, proc)
    assert seen is not None
    assert (seen.version, seen.swtpm_pid, seen.swtpm_rss_kib) == ("2.0", 12, 6668)
    assert seen.state_dir == f"/var/lib/libvirt/swtpm/{UUID}"
    assert read_tpm("<domain><devices/></domain>", UUID, proc) is None
    stopped = read_tpm(WITH_TPM, "never-started", proc)
    assert stopped is not None and stopped.swtpm_pid is None and stopped.state_bytes is None

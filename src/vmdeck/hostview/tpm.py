"""A VM's emulated TPM as the host sees it: the swtpm process beside QEMU and the state it keeps (hostview layer).

libvirt starts one `swtpm socket` per VM with a TPM (user tss) and keeps its state,
the TPM's seeds and NV memory, in /var/lib/libvirt/swtpm/<uuid>/tpm2 (vmdeck.vm.tpm).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmdeck.domxml.tpm import emulated_tpm_version
from vmdeck.hostview.procfs import read_text
from vmdeck.vm.tpm import tpm_state_dir

__all__ = ["TpmHost", "read_tpm"]


@dataclass(frozen=True)
class TpmHost:
    version: str
    state_dir: str
    state_bytes: int | None  # None: no state yet (the VM never ran) or unreadable
    swtpm_pid: int | None  # None: not running
    swtpm_rss_kib: int | None


def _state_bytes(folder: Path) -> int | None:
    if not folder.is_dir():
        return None
    try:
        return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    except OSError:
        return None


def _swtpm(uuid: str, proc: Path) -> tuple[int | None, int | None]:
    """The swtpm serving the state of VM `uuid`: found by its --tpmstate folder (libvirt's pid file is named
    after a shortened VM name, ambiguous between long names)."""
    wanted = f"/swtpm/{uuid}/"
    for comm in proc.glob("[0-9]*/comm"):
        if (read_text(comm) or "").strip() != "swtpm":
            continue
        cmdline = (read_text(comm.parent / "cmdline") or "").replace("\0", " ")
        if wanted not in cmdline:
            continue
        status = read_text(comm.parent / "status") or ""
        rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
        return int(comm.parent.name), rss
    return None, None


def read_tpm(xml: str, uuid: str, proc: Path = Path("/proc")) -> TpmHost | None:
    """The VM's swtpm and TPM state, or None when it has no emulated TPM."""
    version = emulated_tpm_version(xml)
    if version is None:
        return None
    folder = tpm_state_dir(uuid)
    pid, rss = _swtpm(uuid, proc)
    return TpmHost(version=version, state_dir=str(folder), state_bytes=_state_bytes(folder), swtpm_pid=pid,
                   swtpm_rss_kib=rss)

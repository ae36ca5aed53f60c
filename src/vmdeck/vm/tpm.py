"""A VM's TPM state (vm layer): libvirt's swtpm keeps it in /var/lib/libvirt/swtpm/UUID, one folder per VM.

A clone gets a copy of its source's folder under its own UUID, so that what the guest
sealed to the TPM (a BitLocker key, a measured boot's PCR policy) opens in the clone
as in the source. Deleting a VM removes its folder (libvirt's undefine with the TPM
flag, in vmdeck.host.libvirt_api).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from vmdeck.errors import HostError

__all__ = ["SWTPM_DIR", "tpm_state_dir", "copy_tpm_state"]

SWTPM_DIR = Path("/var/lib/libvirt/swtpm")


def tpm_state_dir(uuid: str) -> Path:
    return SWTPM_DIR / uuid


def copy_tpm_state(source_uuid: str, new_uuid: str) -> Path | None:
    """Copy the source VM's TPM state to the new VM's folder, owners and modes kept (swtpm runs as its own
    user and refuses state it cannot write). None when the source has no state yet (never started)."""
    source, target = tpm_state_dir(source_uuid), tpm_state_dir(new_uuid)
    if not source.is_dir():
        return None
    try:
        shutil.copytree(source, target, symlinks=True)
        for folder, dirs, files in os.walk(source):
            relative = Path(folder).relative_to(source)
            for name in (".", *dirs, *files):
                original = Path(folder) / name
                info = original.lstat()
                os.lchown(target / relative / name, info.st_uid, info.st_gid)
    except OSError as err:
        shutil.rmtree(target, ignore_errors=True)
        raise HostError(f"cannot copy the TPM state {source} to {target}: {err.strerror}") from err
    return target

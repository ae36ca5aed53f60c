"""A VM's TPM state in a backup (core layer): swtpm's folder packed as one tar file, and unpacked for the
restored VM, on this machine or on another host (through libvirt's storage streams, vm.host_files).

swtpm keeps the state in /var/lib/libvirt/swtpm/UUID/tpm2 (tpm1.2 for a TPM 1.2): what the guest sealed
to its TPM (a BitLocker key, a measured boot's policy) opens in the restored VM only with it. libvirt
gives the files to swtpm's user when the VM starts, so they may arrive owned by root.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from vmdeck.errors import HostError, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.vm.host_files import download_folder, upload_into_folder
from vmdeck.vm.tpm import SWTPM_DIR, tpm_state_dir

__all__ = ["save_tpm_state", "restore_tpm_state"]


def _sub(version: str) -> str:
    return "tpm2" if version.startswith("2") else "tpm1.2"


def save_tpm_state(host: Host, uuid: str, version: str, dest: Path) -> bool:
    """Pack VM `uuid`'s TPM state (owners and modes too) into the tar file `dest`; False when it has none yet
    (never started)."""
    sub = _sub(version)
    if host.is_local:
        source = tpm_state_dir(uuid) / sub
        if not source.is_dir():
            return False
        with tarfile.open(dest, "w") as tar:
            tar.add(source, arcname=sub)  # owners and modes as they are: swtpm's user, 0600
        return True
    with tempfile.TemporaryDirectory(prefix="vmdeck-tpm-") as tmp:
        try:
            owners = download_folder(host, f"{SWTPM_DIR}/{uuid}/{sub}", Path(tmp))
        except VmdeckError:
            return False  # no such folder there: libvirt makes it at the VM's first start
        if not owners:
            return False
        with tarfile.open(dest, "w") as tar:
            first = next((o for o in owners.values() if o), None)
            folder = tar.gettarinfo(tmp, arcname=sub)
            if first:
                folder.uid, folder.gid, folder.mode = first[0], first[1], 0o700
            tar.addfile(folder)
            for name, owner in owners.items():
                info = tar.gettarinfo(Path(tmp) / name, arcname=f"{sub}/{name}")
                if owner:
                    info.uid, info.gid, info.mode = owner
                with (Path(tmp) / name).open("rb") as data:
                    tar.addfile(info, data)
    return True


def restore_tpm_state(host: Host, packed: Path, uuid: str) -> None:
    """Unpack the TPM state `packed` as VM `uuid`'s (its folder is replaced), owners and modes as packed
    (swtpm refuses state it cannot write)."""
    with tempfile.TemporaryDirectory(prefix="vmdeck-tpm-") as tmp, tarfile.open(packed) as tar:
        members = [m for m in tar.getmembers() if m.isdir() or m.isfile()]
        tar.extractall(tmp, members=members, filter="data")  # only plain files below tmp, whatever the tar says
        if host.is_local:
            target = tpm_state_dir(uuid)
            shutil.rmtree(target, ignore_errors=True)
            try:
                shutil.copytree(tmp, target)
                target.chmod(0o711)  # as libvirt makes it: swtpm's user passes through to its own folder
                for member in members:
                    os.chown(target / member.name, member.uid, member.gid)
                    os.chmod(target / member.name, member.mode & 0o7777)
            except OSError as err:
                raise HostError(f"cannot write the TPM state to {target}: {err.strerror}") from err
            return
        folders = {m.name: (m.uid, m.gid, m.mode & 0o7777) for m in members if m.isdir()}
        for member in members:
            if member.isfile():
                upload_into_folder(host, Path(tmp) / member.name, f"{SWTPM_DIR}/{uuid}/{member.name}",
                                   owner=(member.uid, member.gid, member.mode & 0o7777),
                                   folder_owner=folders.get(str(Path(member.name).parent)))

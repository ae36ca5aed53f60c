"""A VM's NoCloud seed as clones and restores see it: recognise one, and make a copy with a new identity
(core layer).

A clone and a restore as a new VM are both a new instance of an existing guest: cloud-init must run
again in it, so it gets its own seed with a new instance-id (and hostname). Both go through here.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from vmdeck.errors import HostError
from vmdeck.storage.iso import make_iso

__all__ = ["iso_label", "is_seed", "reissue_seed"]


def iso_label(path: str) -> str:
    """The ISO 9660 volume label (32 bytes at offset 40 of the primary volume descriptor, sector 16)."""
    try:
        with open(path, "rb") as iso:
            iso.seek(16 * 2048)
            descriptor = iso.read(72)
    except OSError:
        return ""
    return descriptor[40:72].decode("ascii", "replace").strip() if descriptor[1:6] == b"CD001" else ""


def is_seed(path: str) -> bool:
    """Whether `path` is a NoCloud seed: an ISO labelled "cidata"."""
    return iso_label(path).lower() == "cidata"


def reissue_seed(seed: str, new: str, output: Path) -> Path:
    """Write to `output` a copy of the NoCloud seed `seed` with a new instance-id and hostname `new`:
    cloud-init sees a new instance and runs again."""
    xorriso = shutil.which("xorriso")
    if xorriso is None:
        raise HostError("xorriso is not installed: cannot give the new VM its own cloud-init seed")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cidata"
        folder.mkdir()
        subprocess.run([xorriso, "-osirrox", "on", "-indev", seed, "-extract", "/", str(folder)],
                       check=True, capture_output=True)
        meta = folder / "meta-data"
        lines = meta.read_text().splitlines() if meta.exists() else []
        lines = [line for line in lines if not line.startswith(("instance-id:", "local-hostname:"))]
        meta.chmod(0o644) if meta.exists() else None
        meta.write_text("\n".join([f"instance-id: {new}-{secrets.token_hex(4)}", f"local-hostname: {new}",
                                   *lines]) + "\n")
        return make_iso(folder, output, label="cidata")

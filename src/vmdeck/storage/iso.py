"""Build an ISO 9660 image from a folder with xorriso (storage layer).

Handy for moving files into a guest: `vmdeck iso make DIR -o files.iso`, then
`vmdeck cdrom insert VM files.iso`. xorriso writes Rock Ridge (Unix names and
modes) and Joliet (Windows names), so any guest reads the files back with
their real names. It runs with an argument list, never a shell string.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from vmdeck.errors import Conflict, HostError, InvalidInput, NotFound

__all__ = ["make_iso", "volume_label"]

# ISO 9660 volume IDs: at most 32 characters of A-Z, 0-9 and '_' (d-characters).
_LABEL_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def volume_label(folder: Path) -> str:
    """A valid volume ID derived from the folder name ("my files" -> "MY_FILES")."""
    label = "".join(c if c in _LABEL_CHARS else "_" for c in folder.name.upper())[:32]
    return label or "VMDECK"


def make_iso(folder: str | Path, output: str | Path, *, label: str | None = None, overwrite: bool = False) -> Path:
    """Write an ISO of `folder`'s contents to `output`; returns its absolute path."""
    source = Path(folder).expanduser().absolute()
    target = Path(output).expanduser().absolute()
    if not source.exists():
        raise NotFound(f"folder {source} does not exist")
    if not source.is_dir():
        raise InvalidInput(f"{source} is not a folder (iso make packs a folder's contents)")
    if not os.access(source, os.R_OK | os.X_OK):
        raise InvalidInput(f"folder {source} is not readable")
    if target.is_dir():
        raise InvalidInput(f"output {target} is a directory: give a file name such as {target / 'files.iso'}")
    if target.exists() and not overwrite:
        raise Conflict(f"output {target} already exists (remove it or choose another name)")
    if not target.parent.is_dir():
        raise NotFound(f"output folder {target.parent} does not exist")
    if target == source or source in target.parents:
        raise InvalidInput(f"output {target} must not be inside the folder it packs")
    xorriso = shutil.which("xorriso")
    if xorriso is None:
        raise HostError("xorriso is not installed (apt-get install xorriso)")
    partial = target.with_name(f".{target.name}.partial")
    argv = [
        xorriso, "-as", "mkisofs",
        "-quiet",
        "-rational-rock",  # Rock Ridge with sane owners and modes (0/0, readable by all)
        "-joliet", "-joliet-long",
        "-volid", label or volume_label(source),
        "-output", str(partial),
        # mkisofs emulation knows no "--"; the path is absolute, so it can never pass for an option.
        str(source),
    ]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            detail = next((line for line in lines if ("FAILURE :" in line or "SORRY :" in line)
                           and "aborting" not in line),
                          lines[-1] if lines else f"exit status {result.returncode}")
            raise HostError(f"xorriso could not build {target.name}: {detail.strip()}")
        partial.replace(target)  # only a complete image ever carries the requested name
    finally:
        partial.unlink(missing_ok=True)
    return target

"""Can this host run another architecture's programs? binfmt_misc + qemu-user (images layer).

Building an arm64 Debian root folder on an x86_64 host runs arm64 programs (dpkg's
maintainer scripts, update-initramfs) inside a chroot. The kernel hands them to
QEMU's user-mode emulator through a binfmt_misc handler, which Debian's
qemu-user-static registers (with binfmt-support). The handler needs the F flag:
the kernel then opens the emulator when it is registered, so it also works inside
a chroot that has no copy of it. This module only reads /proc: it tells what is
missing in one line, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmdeck.errors import HostError

__all__ = ["BINFMT_DIR", "Handler", "read_handlers", "check_can_run"]

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# The first 20 bytes of an ELF executable (64-bit little-endian, ET_EXEC) of each architecture:
# what a handler's magic and mask are matched against. e_machine is at offset 18.
_ELF_HEADERS = {
    "aarch64": bytes.fromhex("7f454c46020101000000000000000000" "0200" "b700"),
    "x86_64": bytes.fromhex("7f454c46020101000000000000000000" "0200" "3e00"),
}
_QEMU_NAMES = {"aarch64": "qemu-aarch64", "x86_64": "qemu-x86_64"}


@dataclass(frozen=True)
class Handler:
    """One registered binfmt_misc entry (/proc/sys/fs/binfmt_misc/NAME)."""

    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: bytes
    mask: bytes

    def runs(self, header: bytes) -> bool:
        """True if the kernel would give a file starting with `header` to this handler."""
        if not self.magic:
            return False  # an extension-matching entry (e.g. .jar): not for ELF programs
        chunk = header[self.offset:self.offset + len(self.magic)]
        if len(chunk) < len(self.magic):
            return False
        mask = self.mask or b"\xff" * len(self.magic)
        return all((c & m) == (g & m) for c, g, m in zip(chunk, self.magic, mask, strict=True))


def _parse(name: str, text: str) -> Handler:
    fields: dict[str, str] = {}
    enabled = False
    for line in text.splitlines():
        if line.strip() in ("enabled", "disabled"):
            enabled = line.strip() == "enabled"
            continue
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    try:
        magic = bytes.fromhex(fields.get("magic", ""))
        mask = bytes.fromhex(fields.get("mask", ""))
        offset = int(fields.get("offset", "0"))
    except ValueError:
        magic, mask, offset = b"", b"", 0
    return Handler(name=name, enabled=enabled, interpreter=fields.get("interpreter", ""),
                   flags=fields.get("flags", ""), offset=offset, magic=magic, mask=mask)


def read_handlers(binfmt_dir: Path | None = None) -> list[Handler]:
    binfmt_dir = binfmt_dir or BINFMT_DIR
    handlers = []
    for entry in sorted(binfmt_dir.iterdir()):
        if entry.name in ("status", "register"):
            continue
        try:
            handlers.append(_parse(entry.name, entry.read_text()))
        except OSError:
            continue  # removed while we looked
    return handlers


def check_can_run(arch: str, binfmt_dir: Path | None = None) -> Handler:
    """The handler that runs `arch` programs in a chroot, or HostError saying in one line what is missing."""
    binfmt_dir = binfmt_dir or BINFMT_DIR
    install = "install qemu-user-static and binfmt-support (scripts/setup-host.sh does)"
    status = binfmt_dir / "status"
    try:
        state = status.read_text().strip()
    except OSError:
        raise HostError(f"binfmt_misc is not mounted, so {arch} programs cannot run on this host: "
                        f"mount -t binfmt_misc binfmt_misc {binfmt_dir}, then {install}") from None
    if state != "enabled":
        raise HostError(f"binfmt_misc is disabled, so {arch} programs cannot run on this host: echo 1 > {status}")
    header = _ELF_HEADERS[arch]
    matching = [h for h in read_handlers(binfmt_dir) if h.runs(header)]
    if not matching:
        raise HostError(f"no binfmt_misc handler runs {arch} programs on this host: {install}")
    enabled = [h for h in matching if h.enabled]
    if not enabled:
        names = ", ".join(h.name for h in matching)
        raise HostError(f"the binfmt_misc handler for {arch} programs ({names}) is disabled: "
                        f"update-binfmts --enable {matching[0].name}")
    fixed = [h for h in enabled if "F" in h.flags]
    if not fixed:
        raise HostError(f"the binfmt_misc handler {enabled[0].name} for {arch} programs lacks the F (fix binary) "
                        f"flag, so it cannot run them inside the build's chroot: {install} "
                        f"(its {_QEMU_NAMES[arch]} handler has the flag)")
    return fixed[0]

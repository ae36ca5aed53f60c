"""Device naming rules shared by rendering and device editing (pure)."""

from __future__ import annotations

from collections.abc import Iterable

# libvirt's target prefix for each disk bus: virtio -> vda, sata/scsi -> sda, ide -> hda.
TARGET_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd", "ide": "hd", "usb": "sd"}

VMDECK_NS = "https://vmdeck.dev/xmlns/vm/1"


def target_suffix(index: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa: the kernel's own disk naming."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


def next_target(bus: str, taken: Iterable[str]) -> str:
    prefix = TARGET_PREFIX[bus]
    used = set(taken)
    index = 0
    while f"{prefix}{target_suffix(index)}" in used:
        index += 1
    return f"{prefix}{target_suffix(index)}"

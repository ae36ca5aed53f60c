"""Field errors in the words of the forms (api layer): the one place where pydantic's phrases and the
core's limit messages become "Memory (MiB) must be at most 6233 on this host".

The core and pydantic name fields as the code does (`memory_mib`, `disks.0.size_gib`); people read
the labels of the web form. The `field` of the error body keeps the code's name, for programs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["FIELD_LABELS", "label_for", "humane_message"]

# Code name -> the label the web UI shows beside the input.
FIELD_LABELS = {
    "name": "Name", "template": "Template", "vcpus": "vCPUs", "memory_mib": "Memory (MiB)",
    "disk_gib": "Disk (GiB)", "size_gib": "Size (GiB)", "cdrom": "CD/DVD", "iso": "ISO", "network": "Network",
    "timeout": "Timeout (s)", "text": "Text", "keys": "Keys", "model": "NIC model", "bus": "Bus",
    "autostart": "Autostart", "accel": "Accelerator", "boot_order": "Boot order",
}


def label_for(field: str) -> str | None:
    """`disks.0.size_gib` -> "Disk (GiB)"; None for a field no form shows."""
    if re.fullmatch(r"disks\.0\.size_gib", field):
        return FIELD_LABELS["disk_gib"]
    return FIELD_LABELS.get(field) or FIELD_LABELS.get(field.rsplit(".", 1)[-1])


def _between(low: str, high: str, got: str, unit: str = "") -> str:
    return f"must be at most {high} on this host" if int(got) > int(high) else f"must be at least {low}{unit}"


# (pattern, rewrite) over the message without its "field: " prefix; the first match wins.
_REWRITES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"Input should be greater than or equal to (\S+)"), lambda m: f"must be at least {m[1]}"),
    (re.compile(r"Input should be less than or equal to (\S+)"), lambda m: f"must be at most {m[1]}"),
    (re.compile(r"Input should be greater than (\S+)"), lambda m: f"must be more than {m[1]}"),
    (re.compile(r"Input should be less than (\S+)"), lambda m: f"must be less than {m[1]}"),
    (re.compile(r"Input should be a valid integer.*"), lambda m: "must be a whole number"),
    (re.compile(r"Input should be a valid number.*"), lambda m: "must be a number"),
    (re.compile(r"Input should be a valid boolean.*"), lambda m: "must be true or false"),
    (re.compile(r"Input should be (.+)"), lambda m: f"must be {m[1]}"),
    (re.compile(r"Field required"), lambda m: "is required"),
    (re.compile(r"String should have at least (\d+) characters?"), lambda m: f"must have at least {m[1]} characters"),
    (re.compile(r"String should have at most (\d+) characters?"), lambda m: f"must have at most {m[1]} characters"),
    (re.compile(r"String should match pattern .*"), lambda m: "has characters that are not allowed"),
    # The core's host limits (vm/create.py, vm/settings.py).
    (re.compile(r"\d+ MiB of memory is more than this host has \((\d+) MiB\)"),
     lambda m: f"must be at most {m[1]} on this host"),
    (re.compile(r"memory must be between (\d+) and (\d+) MiB on this host, got (-?\d+)"),
     lambda m: _between(m[1], m[2], m[3])),
    (re.compile(r"vcpus must be between (\d+) and (\d+) on this host, got (-?\d+)"),
     lambda m: _between(m[1], m[2], m[3])),
    (re.compile(r"\d+ vCPUs is beyond this host \((\d+) CPUs, at most (\d+)x overcommit\)"),
     lambda m: f"must be at most {int(m[1]) * int(m[2])} on this host ({m[1]} CPUs)"),
]


def humane_message(field: str | None, message: str) -> str:
    """The message as the form would say it, or `message` unchanged when nothing applies."""
    if not field:
        return message
    label = label_for(field)
    if label is None:
        return message
    text = message.removeprefix(f"{field}: ").removeprefix("Value error, ")
    for pattern, rewrite in _REWRITES:
        match = pattern.fullmatch(text)
        if match:
            return f"{label} {rewrite(match)}"
    return f"{label}: {text}"

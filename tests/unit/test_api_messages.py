"""Field errors in the words of the web forms (vmdeck.api.messages)."""

from __future__ import annotations

import pytest

from vmdeck.api.messages import humane_message, label_for


@pytest.mark.parametrize(("field", "message", "expected"), [
    ("memory_mib", "memory_mib: Input should be greater than or equal to 32", "Memory (MiB) must be at least 32"),
    ("disks.0.size_gib", "disks.0.size_gib: Input should be greater than 0", "Disk (GiB) must be more than 0"),
    ("memory_mib", "16777216 MiB of memory is more than this host has (6233 MiB)",
     "Memory (MiB) must be at most 6233 on this host"),
    ("memory_mib", "memory must be between 32 and 6233 MiB on this host, got 99999999",
     "Memory (MiB) must be at most 6233 on this host"),
    ("memory_mib", "memory must be between 32 and 6233 MiB on this host, got 16", "Memory (MiB) must be at least 32"),
    ("vcpus", "500 vCPUs is beyond this host (2 CPUs, at most 8x overcommit)",
     "vCPUs must be at most 16 on this host (2 CPUs)"),
    ("vcpus", "vcpus: Input should be a valid integer, unable to parse string as an integer", "vCPUs must be a whole number"),
    ("name", "invalid VM name 'a b'", "Name: invalid VM name 'a b'"),
    ("unknown_field", "something odd", "something odd"),
    (None, "no field", "no field"),
])
def test_humane_message(field: str | None, message: str, expected: str) -> None:
    assert humane_message(field, message) == expected


def test_labels_follow_the_form() -> None:
    assert label_for("memory_mib") == "Memory (MiB)"
    assert label_for("disks.0.size_gib") == "Disk (GiB)"
    assert label_for("nothing") is None

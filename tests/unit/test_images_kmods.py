"""Module dependency closure and modules.dep handling for the tiny image builder."""

from __future__ import annotations

import pytest

from vmdeck.images import kmods

DEP = """\
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/cdrom/cdrom.ko:
kernel/drivers/scsi/sr_mod.ko: kernel/drivers/cdrom/cdrom.ko kernel/drivers/scsi/scsi_mod.ko \
kernel/drivers/scsi/scsi_common.ko
kernel/drivers/gpio/gpio-pl061.ko.xz:
"""


def test_parse_modules_dep() -> None:
    dep = kmods.parse_modules_dep(DEP + "\n# comment\n")
    assert dep["kernel/drivers/virtio/virtio_ring.ko"] == []
    assert dep["kernel/drivers/scsi/sr_mod.ko"][0] == "kernel/drivers/cdrom/cdrom.ko"
    assert len(dep) == 9


def test_module_name_normalizes_dashes_and_suffixes() -> None:
    assert kmods.module_name("kernel/drivers/gpio/gpio-pl061.ko.xz") == "gpio_pl061"
    assert kmods.module_name("kernel/fs/isofs/isofs.ko") == "isofs"
    assert kmods.normalize_path("a/b-c.ko.xz") == "a/b-c.ko"
    assert kmods.normalize_path("a/b.ko") == "a/b.ko"


def test_closure_puts_dependencies_first_and_reports_missing() -> None:
    dep = kmods.parse_modules_dep(DEP)
    order, missing = kmods.closure(["sr_mod", "virtio_pci", "virtio_blk", "e1000", "gpio-pl061"], dep)
    names = [kmods.module_name(p) for p in order]
    assert missing == ["e1000"]
    assert len(names) == len(set(names))  # each module once
    for before, after in [
        ("cdrom", "sr_mod"),
        ("scsi_common", "scsi_mod"),
        ("scsi_mod", "sr_mod"),
        ("virtio_ring", "virtio"),
        ("virtio", "virtio_pci"),
        ("virtio", "virtio_blk"),
    ]:
        assert names.index(before) < names.index(after)
    assert "gpio_pl061" in names


def test_closure_detects_cycles() -> None:
    dep = {"a.ko": ["b.ko"], "b.ko": ["a.ko"]}
    with pytest.raises(ValueError, match="cycle"):
        kmods.closure(["a"], dep)


def test_format_modules_dep_round_trips_with_load_first_last() -> None:
    dep = kmods.parse_modules_dep(DEP)
    order, _ = kmods.closure(["sr_mod"], dep)
    text = kmods.format_modules_dep(dep, order)
    again = kmods.parse_modules_dep(text)
    assert set(again) == set(order)
    # modprobe loads the last-listed dependency first
    assert again["kernel/drivers/scsi/sr_mod.ko"][-1] in (
        "kernel/drivers/cdrom/cdrom.ko",
        "kernel/drivers/scsi/scsi_common.ko",
    )
    deps = again["kernel/drivers/scsi/sr_mod.ko"]
    assert deps.index("kernel/drivers/scsi/scsi_mod.ko") < deps.index("kernel/drivers/scsi/scsi_common.ko")

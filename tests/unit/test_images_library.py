"""The image library (import, list, remove) and the disk layout helpers, on real qemu-img files."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from vmdeck.errors import Conflict, InvalidInput, NotFound
from vmdeck.images import library
from vmdeck.images.diskimage import ROOT_LABEL, SECTOR, grub_cfg, patch_boot_img, plan_layout
from vmdeck.vm.baseimage import overlay_capacity

GIB = 1024**3


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VMDECK_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _qcow2(path: Path, size: str = "1G", backing: Path | None = None) -> Path:
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        argv += ["-b", str(backing), "-F", "qcow2"]
    subprocess.run([*argv, str(path), size], check=True)
    return path


def test_import_records_format_and_virtual_size(data_dir: Path) -> None:
    record = library.import_image(_qcow2(data_dir / "cloud.qcow2", "3G"), name="ubu", os_name="ubuntu")
    assert (record.name, record.format, record.virtual_size, record.os) == ("ubu", "qcow2", 3 * GIB, "ubuntu")
    assert Path(record.path).is_file() and Path(record.path).parent == library.library_dir()
    assert [r.name for r in library.list_images()] == ["ubu"]
    raw = data_dir / "disk.img"
    raw.write_bytes(bytes(1024 * 1024))
    assert library.import_image(raw).format == "raw"
    with pytest.raises(Conflict, match="already in the library"):
        library.import_image(raw, name="ubu")


@pytest.mark.parametrize("name", ["tiny", "../x", "a b"])
def test_import_refuses_bad_names(data_dir: Path, name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid image name"):
        library.import_image(_qcow2(data_dir / "c.qcow2"), name=name)


def test_import_refuses_overlays_and_missing_files(data_dir: Path) -> None:
    base = _qcow2(data_dir / "base.qcow2")
    with pytest.raises(InvalidInput, match="overlay"):
        library.import_image(_qcow2(data_dir / "top.qcow2", backing=base))
    with pytest.raises(NotFound):
        library.import_image(data_dir / "nope.qcow2")
    assert library.list_images() == []


def test_remove_refuses_while_used_and_names_the_vms(data_dir: Path) -> None:
    library.import_image(_qcow2(data_dir / "b.qcow2"), name="b")
    with pytest.raises(Conflict, match="vm1, vm2"):
        library.remove_image("b", ["vm2", "vm1"])
    assert library.find_image("b") is not None
    path = Path(library.remove_image("b", []).path)
    assert not path.exists() and library.find_image("b") is None
    with pytest.raises(NotFound, match="no image named 'b'"):
        library.get_image("b")


def test_overlay_capacity_refuses_a_smaller_disk(data_dir: Path) -> None:
    record = library.import_image(_qcow2(data_dir / "b.qcow2", "2G"), name="b")
    assert overlay_capacity(record, None) == 2 * GIB
    assert overlay_capacity(record, 8) == 8 * GIB
    with pytest.raises(InvalidInput, match="smaller than image 'b'"):
        overlay_capacity(record, 1)


def test_layout_puts_root_last_and_aligned() -> None:
    layout = plan_layout(1981 * 1024 * 1024)
    assert layout.bios_start == 2048 and layout.esp_start == 4096
    assert layout.root_start + layout.root_sectors + 2048 == layout.total_sectors
    assert layout.total_sectors * SECTOR == 2 * GIB


def test_boot_img_keeps_the_partition_table_and_points_at_core() -> None:
    boot = bytes(range(256)) * 2
    mbr = bytes(0x1B8) + b"SIGN" + b"\0\0" + b"P" * 64 + b"\x55\xaa"
    out = patch_boot_img(boot, mbr, 2048)
    assert out[0x1B8:] == mbr[0x1B8:]  # disk signature, partition table, boot signature untouched
    assert struct.unpack_from("<Q", out, 0x5C)[0] == 2048
    assert out[0x66:0x68] == b"\x90\x90"
    assert out[:3] == boot[:3]


def test_grub_cfg_boots_the_root_by_label() -> None:
    cfg = grub_cfg("console=ttyS0")
    assert f"root=LABEL={ROOT_LABEL}" in cfg and "linux /vmlinuz" in cfg and "initrd /initrd.img" in cfg


def test_vms_using_an_image_are_found_through_backing_chains(tmp_path: Path) -> None:
    """Any VM on the host whose disk's backing chain reaches the image counts, vmdeck's or not."""
    from testdriver import open_test_host
    from vmdeck.vm.baseimage import vms_using_image

    base = _qcow2(tmp_path / "base.qcow2")
    middle = _qcow2(tmp_path / "middle.qcow2", backing=base)
    top = _qcow2(tmp_path / "top.qcow2", backing=middle)
    other = _qcow2(tmp_path / "other.qcow2")
    with open_test_host(tmp_path) as host:
        for name, disk in (("chained", top), ("unrelated", other)):
            host.conn.define(f"<domain type='test'><name>{name}</name><memory>65536</memory>"
                             "<os><type>hvm</type></os><devices><disk type='file' device='disk'>"
                             f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk></devices></domain>")
        assert vms_using_image(host, base) == ["chained"]
        assert vms_using_image(host, other) == ["unrelated"]
        assert vms_using_image(host, tmp_path / "nobody.qcow2") == []


def test_default_template_follows_the_images_arch(data_dir: Path) -> None:
    library.import_image(_qcow2(data_dir / "a.qcow2"), name="arm", arch="aarch64")
    library.import_image(_qcow2(data_dir / "x.qcow2"), name="x86")
    assert library.default_template("arm") == "debian-12-arm64"
    assert library.default_template("x86") == "debian-12"
    assert library.default_template("missing") == "debian-12"  # creating then says it is not in the library

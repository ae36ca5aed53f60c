"""Pure parts of the tiny guest image: ELF reading, guest files, cache lookup."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vmdeck.errors import InvalidInput
from vmdeck.images import elf, guest, tiny


def test_arch_profiles_and_cmdline() -> None:
    x86 = tiny.ARCHES["x86_64"].cmdline.split()
    # The serial console last, so it is /dev/console; no_timer_check keeps a starved TCG boot alive.
    assert x86[x86.index("console=tty0") + 1] == "console=ttyS0" and {"quiet", "no_timer_check"} <= set(x86)
    assert "console=ttyAMA0" in tiny.ARCHES["aarch64"].cmdline.split()
    for prof in tiny.ARCHES.values():
        for m in ("virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "sr_mod", "isofs", "button"):
            assert m in prof.modules


def test_image_dir_follows_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMDECK_DATA_DIR", str(tmp_path))
    assert tiny.image_dir("aarch64") == tmp_path / "images" / "tiny-aarch64"
    with pytest.raises(InvalidInput):
        tiny.image_dir("riscv64")


def test_find_tiny_needs_a_complete_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMDECK_DATA_DIR", str(tmp_path))
    d = tiny.image_dir("x86_64")
    d.mkdir(parents=True)
    (d / "vmlinuz").write_bytes(b"k")
    (d / "initrd.img").write_bytes(b"i")
    assert tiny.find_tiny("x86_64") is None  # no manifest yet: incomplete
    (d / "manifest.json").write_text(
        json.dumps(
            {
                "builder_version": tiny.BUILDER_VERSION,
                "kernel_version": "6.1.0-9-cloud-amd64",
                "cmdline": "console=ttyS0",
                "ready_marker": "VMDECK-READY",
            }
        )
    )
    img = tiny.find_tiny("x86_64")
    assert img is not None
    assert img.kernel == d / "vmlinuz" and img.initrd == d / "initrd.img"
    assert img.ready_marker == "VMDECK-READY" and img.kernel_version == "6.1.0-9-cloud-amd64"
    # build_tiny is idempotent: a cached image comes back without any download
    msgs: list[str] = []
    assert tiny.build_tiny("x86_64", progress=msgs.append) == img
    assert msgs and "cached" in msgs[0]


def test_guest_files_wire_serial_ready_marker_and_agent() -> None:
    files = guest.guest_files("ttyAMA0", vga=False)
    inittab = files["etc/inittab"][0]
    assert "::sysinit:/etc/rc" in inittab
    assert "ttyAMA0::respawn:-/bin/sh" in inittab
    assert "tty1::" not in inittab
    assert "::ctrlaltdel:/sbin/reboot -f" in inittab
    rc = files["etc/rc"][0]
    assert "VMDECK-READY" in rc and "VMDECK-BOOT-ID" in rc and "SERIAL=ttyAMA0" in rc
    assert "org.qemu.guest_agent.0" in files["etc/vmdeck/qga-loop"][0]
    assert files["etc/acpi/PWRF/00000080"][1] & 0o111
    assert "tty1::respawn:-/bin/sh" in guest.guest_files("ttyS0", vga=True)["etc/inittab"][0]


def test_guest_scripts_parse() -> None:
    for path, (text, _mode) in guest.guest_files("ttyS0", vga=True).items():
        if text.startswith("#!/bin/sh"):
            assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0, path


def test_elf_reads_a_dynamic_executable() -> None:
    info = elf.dynamic_info(Path(sys.executable).resolve().read_bytes())
    assert info.machine in ("x86_64", "aarch64")
    assert info.interp and "ld-linux" in info.interp
    assert any(n.startswith("libc.so") for n in info.needed) or info.needed == []


def test_elf_rejects_non_elf() -> None:
    with pytest.raises(elf.ElfError):
        elf.dynamic_info(b"#!/bin/sh\n" + b"\0" * 100)


def test_elf_modinfo_depends() -> None:
    # a minimal ELF with just a .modinfo section, as the kernel build writes it
    modinfo = b"license=GPL\0depends=virtio,virtio_ring\0name=virtio_blk\0"
    shstr = b"\0.modinfo\0.shstrtab\0"
    body_off = 64
    data_off = body_off
    shstr_off = data_off + len(modinfo)
    sh_off = (shstr_off + len(shstr) + 7) & ~7
    import struct

    hdr = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    hdr += struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, sh_off, 0, 64, 0, 0, 64, 3, 2)
    blob = bytearray(hdr)
    blob += modinfo + shstr
    blob += b"\0" * (sh_off - len(blob))
    blob += b"\0" * 64  # null section
    blob += struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, data_off, len(modinfo), 0, 0, 1, 0)
    blob += struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0)
    assert elf.module_depends(bytes(blob)) == ["virtio", "virtio_ring"]
    assert elf.modinfo(bytes(blob))["name"] == ["virtio_blk"]

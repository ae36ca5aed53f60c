"""The Debian image build's plan per architecture (no build: packages, boot loader, disk layout, the
prepared root folder, and the host checks an arm64 build makes before its long mmdebstrap)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vmdeck.errors import HostError, InvalidInput, NotFound
from vmdeck.images.binfmt import check_can_run
from vmdeck.images.debian import PACKAGES, build_plan, check_build_host, mmdebstrap_argv, prepare_root
from vmdeck.images.diskimage import MIB, SECTOR, grub_cfg, plan_layout, sfdisk_script

GIB = 1024**3
QEMU_AARCH64 = ("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: {flags}\noffset 0\n"
                "magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n")
QEMU_ARM = ("enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: PF\noffset 0\n"
            "magic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n")


def test_arm64_plan_is_its_own_image_with_the_arm64_kernel_and_grub() -> None:
    plan = build_plan("debian-12", "aarch64")
    assert (plan.image_name, plan.arch, plan.debian_arch) == ("debian-12-arm64", "aarch64", "arm64")
    assert plan.packages[0] == "linux-image-cloud-arm64"
    assert {"systemd-sysv", "cloud-init", "qemu-guest-agent", "openssh-server", "cloud-guest-utils",
            "grub-efi-arm64-bin"} <= set(plan.packages)
    assert not any("amd64" in package for package in plan.packages)
    # The x86_64 image is unchanged: same packages, no GRUB package in the guest.
    x86 = build_plan("debian-12")
    assert (x86.image_name, x86.packages) == ("debian-12", PACKAGES)
    assert PACKAGES[0] == "linux-image-cloud-amd64" and "grub-efi-arm64-bin" not in PACKAGES


def test_arm64_boots_uefi_only_from_the_removable_path_with_the_guests_grub(tmp_path: Path) -> None:
    boot = build_plan("debian-12", "aarch64").boot
    assert (boot.efi_format, boot.efi_file, boot.bios, boot.grub_serial) == ("arm64-efi", "BOOTAA64.EFI", False,
                                                                           False)
    # grub-efi-arm64-bin is not installable on an x86 host: its modules come from the guest's folder.
    assert boot.module_dir("arm64-efi", tmp_path) == tmp_path / "usr/lib/grub/arm64-efi"
    x86 = build_plan("debian-12").boot
    assert (x86.efi_file, x86.bios) == ("BOOTX64.EFI", True)
    assert x86.module_dir("x86_64-efi", tmp_path) == Path("/usr/lib/grub/x86_64-efi")


def test_arm64_kernel_console_is_the_pl011() -> None:
    cmdline = build_plan("debian-12", "aarch64").cmdline
    assert "console=ttyAMA0,115200n8" in cmdline and "ttyS0" not in cmdline
    cfg = grub_cfg(cmdline, serial=False)
    assert "serial" not in cfg.replace("console=ttyAMA0", "") and "terminal_" not in cfg
    assert "linux /vmlinuz root=LABEL=vmdeck-root ro console=tty0 console=ttyAMA0,115200n8" in cfg
    assert "terminal_output console serial" in grub_cfg("console=ttyS0")  # x86: GRUB on the serial port too


def test_mmdebstrap_runs_for_arm64_with_its_own_package_cache(tmp_path: Path) -> None:
    plan = build_plan("debian-12", "aarch64")
    argv = mmdebstrap_argv(plan, tmp_path / "root", tmp_path / "cache-arm64")
    assert argv[0] == "mmdebstrap" and "--architectures=arm64" in argv and "--mode=root" in argv
    include = next(a for a in argv if a.startswith("--include=")).removeprefix("--include=").split(",")
    assert include == list(plan.packages)
    assert f"--setup-hook=sync-in {tmp_path / 'cache-arm64'} /var/cache/apt/archives/" in argv
    assert argv[argv.index("bookworm") + 1] == str(tmp_path / "root")
    assert "--architectures=amd64" in mmdebstrap_argv(build_plan("debian-12"), tmp_path, tmp_path)


def test_uefi_only_layout_has_no_bios_boot_partition() -> None:
    layout = plan_layout(2048 * MIB - 66 * MIB, bios=False)
    assert layout.bios_sectors == 0 and layout.esp_start == 2048  # the ESP at 1 MiB
    assert layout.root_start == layout.esp_start + 64 * 2048
    assert layout.total_sectors * SECTOR == 2 * GIB
    script = sfdisk_script(layout)
    assert "bios-boot" not in script and script.count("start=") == 2
    assert "bios-boot" in sfdisk_script(plan_layout(2048 * MIB - 67 * MIB))


@pytest.mark.parametrize(("name", "arch", "error", "message"), [
    ("debian-12-arm64", "x86_64", NotFound, "vmdeck image build debian-12 --arch aarch64"),
    ("ubuntu", "x86_64", NotFound, "it builds: tiny, debian-12"),
    ("debian-12", "riscv64", InvalidInput, "debian-12 is built for x86_64, aarch64 only, not riscv64"),
])
def test_build_plan_refuses_what_it_cannot_build(name: str, arch: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build_plan(name, arch)


def _fake_root(root: Path, links_in_boot: bool = False) -> Path:
    """What mmdebstrap leaves, reduced to what prepare_root reads and changes."""
    version = "6.1.0-56-cloud-arm64"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / f"vmlinuz-{version}").write_bytes(b"kernel")
    (root / "boot" / f"initrd.img-{version}").write_bytes(b"initrd")
    links = root / "boot" if links_in_boot else root
    (links / "vmlinuz").symlink_to(f"boot/vmlinuz-{version}" if not links_in_boot else f"vmlinuz-{version}")
    (links / "initrd.img").symlink_to(f"boot/initrd.img-{version}" if not links_in_boot else f"initrd.img-{version}")
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("secret")
    (root / "etc/shadow").write_text("root:$6$somehash:19000:0:99999:7:::\ndebian:*:19000:0:99999:7:::\n")
    (root / "var/log").mkdir(parents=True)
    (root / "var/log/dpkg.log").write_text("install ...")
    (root / "usr").mkdir()
    return root


def test_prepare_root_makes_an_arm64_cloud_image(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "root")
    assert prepare_root(root, build_plan("debian-12", "aarch64")) == "6.1.0-56-cloud-arm64"
    assert not list((root / "etc/ssh").glob("ssh_host_*"))
    assert (root / "etc/shadow").read_text().startswith("root:*:")
    assert (root / "etc/machine-id").read_text() == ""
    cfg = (root / "boot/grub/grub.cfg").read_text()
    assert "console=ttyAMA0" in cfg and "linux /vmlinuz " in cfg and "initrd /initrd.img" in cfg
    assert "datasource_list: [NoCloud, None]" in (root / "etc/cloud/cloud.cfg.d/90-vmdeck.cfg").read_text()
    assert (root / "var/log/dpkg.log").read_text() == ""


def test_prepare_root_follows_kernel_links_kept_in_boot(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "root", links_in_boot=True)
    prepare_root(root, build_plan("debian-12", "aarch64"))
    cfg = (root / "boot/grub/grub.cfg").read_text()
    assert "linux /boot/vmlinuz " in cfg and "initrd /boot/initrd.img" in cfg


# ------------------------------------------------------------------ the host checks (binfmt_misc, tools)


def _binfmt(tmp_path: Path, status: str | None = "enabled", **handlers: str) -> Path:
    folder = tmp_path / "binfmt_misc"
    folder.mkdir()
    if status is not None:
        (folder / "status").write_text(status + "\n")
        (folder / "register").write_text("")
    for name, text in handlers.items():
        (folder / name.replace("_", "-")).write_text(text)
    return folder


def test_a_registered_qemu_aarch64_handler_passes(tmp_path: Path) -> None:
    folder = _binfmt(tmp_path, qemu_arm=QEMU_ARM, qemu_aarch64=QEMU_AARCH64.format(flags="PF"),
                     jar="enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n")
    handler = check_can_run("aarch64", folder)
    assert handler.name == "qemu-aarch64" and handler.interpreter.endswith("aarch64-binfmt-P")


@pytest.mark.parametrize(("status", "handlers", "message"), [
    (None, {}, "binfmt_misc is not mounted, so aarch64 programs cannot run on this host: "
               "mount -t binfmt_misc binfmt_misc"),
    ("disabled", {}, "binfmt_misc is disabled"),
    ("enabled", {"qemu_arm": QEMU_ARM}, "no binfmt_misc handler runs aarch64 programs on this host: "
                                        "install qemu-user-static and binfmt-support"),
    ("enabled", {"qemu_aarch64": QEMU_AARCH64.format(flags="PF").replace("enabled", "disabled")},
     "is disabled: update-binfmts --enable qemu-aarch64"),
    ("enabled", {"qemu_aarch64": QEMU_AARCH64.format(flags="P")}, "lacks the F (fix binary) flag"),
])
def test_a_missing_prerequisite_is_one_clear_line(tmp_path: Path, status: str | None, handlers: dict[str, str],
                                                   message: str) -> None:
    folder = _binfmt(tmp_path, status, **handlers)
    with pytest.raises(HostError) as caught:
        check_can_run("aarch64", folder)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 5


def test_the_native_architecture_needs_no_emulation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("vmdeck.images.binfmt.BINFMT_DIR", tmp_path / "nothing")
    check_build_host(build_plan("debian-12", "aarch64"), host_arch="aarch64")
    with pytest.raises(HostError, match="binfmt_misc is not mounted"):
        check_build_host(build_plan("debian-12", "aarch64"), host_arch="x86_64")


def test_cli_names_the_missing_tools_in_one_line_with_exit_5(tmp_path: Path) -> None:
    """The real command, with a PATH that has none of the build's tools: it stops before any work."""
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin"), "VMDECK_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "vmdeck.cli.main", "image", "build", "debian-12",
                             "--arch", "aarch64"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 5, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the image build needs ") and "mmdebstrap (mmdebstrap)" in line
    assert "grub-mkimage (grub-common)" in line and "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "images" / "debian-12-arm64.qcow2").exists()


def test_the_x86_64_disk_still_boots_bios_and_uefi(tmp_path: Path) -> None:
    """assemble_disk on a small folder with the x86_64 plan: the BootPlan refactor kept its disk."""
    from vmdeck.images.diskimage import assemble_disk

    root = tmp_path / "root"
    (root / "boot/grub").mkdir(parents=True)
    (root / "boot/grub/grub.cfg").write_text(grub_cfg("console=ttyS0"))
    raw = tmp_path / "disk.raw"
    steps: list[str] = []
    layout = assemble_disk(root, raw, 32 * MIB, steps.append, build_plan("debian-12").boot)
    assert steps[0] == "building GRUB for BIOS (i386-pc) and UEFI (x86_64-efi)"
    table = subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, text=True, check=True).stdout
    assert [p["name"] for p in json.loads(table)["partitiontable"]["partitions"]] == [
        "bios-boot", "esp", "root"]
    mbr = raw.read_bytes()[:SECTOR]
    assert int.from_bytes(mbr[0x5C:0x64], "little") == layout.bios_start  # boot.img points at core.img
    listing = subprocess.run(["mdir", "-b", "-i", f"{raw}@@{layout.esp_start * SECTOR}", "::/EFI/BOOT"],
                             capture_output=True, text=True, check=True).stdout
    assert "BOOTX64.EFI" in listing

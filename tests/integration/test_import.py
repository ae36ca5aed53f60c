"""`vmdeck import` on a real libvirtd: OVAs in VMware's and VirtualBox's dialects boot with the CPUs, memory and
disk their OVF gives (seen inside the guest), foreign formats convert byte for byte, and every refusal
(tampered disk, a path in an href, a symlinked disk, a quota too small) leaves nothing in the pool."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from itest_support import PREFIX, READY_TIMEOUT_S, delete_vm, wait_for

from vmdeck.host.connection import Host
from vmdeck.storage.pool import ensure_pool, pool_path
from vmdeck.vm.boot import start_many

sys.path.insert(0, str(Path(__file__).parent.parent))
from ovabuild import build_ova, vmware_ovf  # noqa: E402

DISK_MIB = 48
MARKER = b"vmdeck-import-marker-" + secrets.token_hex(4).encode()


@pytest.fixture(scope="module")
def raw_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small raw disk: a marker at its start, random data in the middle, zeros elsewhere."""
    path = tmp_path_factory.mktemp("import") / "source.img"
    with path.open("wb") as handle:
        handle.truncate(DISK_MIB * 2**20)
        handle.write(MARKER)
        handle.seek(5 * 2**20)
        handle.write(os.urandom(3 * 2**20))
    return path


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "vmdeck.sqlite"
    monkeypatch.setenv("VMDECK_DB", str(path))  # the cli fixture passes the environment on
    return path


@pytest.fixture
def names(host: Host) -> Iterator[Callable[[str], str]]:
    made: list[str] = []

    def make(kind: str) -> str:
        made.append(f"{PREFIX}imp-{kind}-{uuid.uuid4().hex[:6]}")
        return made[-1]

    yield make
    for name in made:
        delete_vm(host, name)


def _pool_files(host: Host, name: str) -> list[str]:
    return sorted(p.name for p in Path(pool_path(ensure_pool(host))).iterdir() if p.name.startswith(name))


DIALECTS = {"vmware": (2, 384), "virtualbox": (3, 320)}  # dialect -> the vCPUs and MiB its OVF gives


def test_ovas_boot_with_the_ovf_hardware(raw_disk: Path, tmp_path: Path, host: Host, cli: Callable, db: Path,
                                        names: Callable, run_in_guest: Callable) -> None:
    made: dict[str, tuple[int, int]] = {}
    for dialect, (vcpus, memory_mib) in DIALECTS.items():
        name = names(dialect)
        ova = build_ova(tmp_path, raw_disk, f"appliance-{dialect}", vcpus=vcpus, memory_mib=memory_mib,
                        dialect=dialect)
        # The tiny template boots its own kernel: the guest needs no boot loader on the imported disk.
        plan = cli("import", ova, "--name", name, "--template", "tiny", "--disk-bus", "virtio", "--plan", "--json")
        assert plan.returncode == 0, plan.stderr
        planned = json.loads(plan.stdout)
        assert (planned["vcpus"], planned["memory_mib"]) == (vcpus, memory_mib)
        assert planned["disks"][0]["capacity_bytes"] == DISK_MIB * 2**20
        assert not host.exists(name) and _pool_files(host, name) == []  # --plan changes nothing
        imported = cli("import", ova, "--name", name, "--template", "tiny", "--disk-bus", "virtio")
        assert imported.returncode == 0, imported.stderr
        assert "checking the manifest" in imported.stderr and "100%" in imported.stderr
        made[name] = (vcpus, memory_mib)
    start_many(host, list(made), wait=True, timeout=READY_TIMEOUT_S)  # both boot at once: one wait
    for name, (vcpus, memory_mib) in made.items():
        assert run_in_guest(name, "nproc").stdout.decode().strip() == str(vcpus)
        meminfo = run_in_guest(name, "grep MemTotal /proc/meminfo").stdout.decode().split()
        # MemTotal is what the kernel keeps after its own reservations: a little below the RAM it was given.
        assert memory_mib * 1024 * 0.8 < int(meminfo[1]) <= memory_mib * 1024
        assert int(run_in_guest(name, "cat /sys/block/vda/size").stdout) == DISK_MIB * 2**20 // 512
        assert run_in_guest(name, f"head -c {len(MARKER)} /dev/vda").stdout == MARKER
        deleted = cli("delete", name, "--force")
        assert deleted.returncode == 0, deleted.stderr
        assert _pool_files(host, name) == []  # the converted disk was the VM's own


def _qemu_img(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(("suffix", "options"), [
    (".vhdx", ["-O", "vhdx"]),
    (".vmdk", ["-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"]),  # a descriptor and its extent files
    (".vhd", ["-O", "vpc", "-o", "force_size=on"]),
])
def test_foreign_disks_convert_to_the_same_bytes(suffix: str, options: list[str], raw_disk: Path, tmp_path: Path,
                                                 host: Host, cli: Callable, db: Path, names: Callable) -> None:
    name = names(suffix[1:])
    image = tmp_path / f"guest{suffix}"
    assert _qemu_img("convert", "-f", "raw", *options, raw_disk, image).returncode == 0
    if suffix == ".vmdk":
        assert "guest-s001.vmdk" in os.listdir(tmp_path)
    made = cli("import", image, "--name", name, "--template", "q35-virtio", "--json")
    assert made.returncode == 0, made.stderr
    volume = Path(pool_path(ensure_pool(host))) / f"{name}-vda.qcow2"
    assert _qemu_img("info", "--output=json", volume).stdout.count('"format": "qcow2"') == 1
    compared = _qemu_img("compare", "-f", "raw", "-F", "qcow2", raw_disk, volume)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert json.loads(made.stdout)["name"] == name


def _ovf_folder(tmp_path: Path, raw_disk: Path, href: str) -> Path:
    folder = tmp_path / "package"
    folder.mkdir()
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw_disk,
                    folder / "disk1.vmdk"], check=True, timeout=600)
    ovf = folder / "appliance.ovf"
    ovf.write_text(vmware_ovf("appliance", 1, 128, href, DISK_MIB))
    return ovf


def _tampered_ova(tmp_path: Path, raw_disk: Path) -> Path:
    ova = build_ova(tmp_path, raw_disk, "tampered", vcpus=1, memory_mib=128)
    disk = tmp_path / "tampered-disk1.vmdk"
    data = bytearray(disk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    disk.write_bytes(bytes(data))  # changed after the manifest was written
    ova.unlink()
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as archive:
        for member in ("tampered.ovf", "tampered.mf", "tampered-disk1.vmdk"):
            archive.add(tmp_path / member, arcname=member)
    return ova


def _symlinked(tmp_path: Path, raw_disk: Path) -> Path:
    ovf = _ovf_folder(tmp_path, raw_disk, "linked.vmdk")
    os.symlink(ovf.parent / "disk1.vmdk", ovf.parent / "linked.vmdk")
    return ovf


def test_refusals_leave_nothing_behind(raw_disk: Path, tmp_path: Path, host: Host, cli: Callable, db: Path,
                                       names: Callable) -> None:
    cases = [
        ("tampered", _tampered_ova(tmp_path / "t", raw_disk) if (tmp_path / "t").mkdir() is None else None,
         [], 2, "does not match the manifest's SHA256 sum"),
        ("dotdot", _ovf_folder(tmp_path / "d", raw_disk, "../disk1.vmdk") if (tmp_path / "d").mkdir() is None
         else None, [], 2, "only plain file names"),
        ("symlink", _symlinked(tmp_path / "s", raw_disk) if (tmp_path / "s").mkdir() is None else None,
         [], 2, "is a symbolic link"),
        ("quota", build_ova(tmp_path, raw_disk, "big", vcpus=1, memory_mib=128), ["--project", "tight"], 4,
         "quota exceeded in project tight: disk_gib limit 0.01 GiB"),
    ]
    assert cli("project", "create", "tight", "--disk", "0.01").returncode == 0
    for kind, package, extra, code, message in cases:
        name = names(kind)
        assert package is not None
        result = cli("import", package, "--name", name, "--template", "tiny", *extra)
        assert result.returncode == code, (kind, result.stdout, result.stderr)
        last = result.stderr.strip().splitlines()[-1]  # progress lines may come before: one error line at the end
        assert last.startswith("error: ") and message in last, (kind, result.stderr)
        assert "Traceback" not in result.stderr
        assert not host.exists(name)
        assert _pool_files(host, name) == [], kind


def test_interrupted_conversion_leaves_nothing(raw_disk: Path, tmp_path: Path, host: Host, names: Callable) -> None:
    """A conversion that fails half-way (its source is cut short) removes the partial volume."""
    from vmdeck.errors import VmdeckError
    from vmdeck.vm.importer import ImportOptions, import_vm, plan_import

    name = names("cut")
    image = tmp_path / "cut.vmdk"
    assert _qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw_disk,
                     image).returncode == 0
    plan = plan_import(image, ImportOptions(name=name, template="q35-virtio"))
    with image.open("r+b") as handle:
        handle.truncate(image.stat().st_size // 2)  # after planning: its compressed grains end early
    with pytest.raises(VmdeckError, match="qemu-img could not convert the disk"):
        import_vm(host, plan)
    assert not host.exists(name)
    wait_for(lambda: _pool_files(host, name) == [], timeout=30)
    shutil.rmtree(tmp_path, ignore_errors=True)

from pathlib import Path

import pytest

from vmdeck.errors import InvalidInput, NotFound
from vmdeck.spec.templates import Overrides, get_template, list_templates, resolve


def test_builtin_templates_are_all_valid() -> None:
    names = {t.name for t in list_templates()}
    assert {"tiny", "q35-virtio", "legacy-pc", "tiny-arm64"} <= names


def test_legacy_pc_is_ide_on_i440fx() -> None:
    spec = get_template("legacy-pc").spec
    assert spec.machine == "pc"
    assert {d.bus for d in spec.disks} == {"ide"} and {c.bus for c in spec.cdroms} == {"ide"}
    assert spec.nics[0].model == "e1000" and spec.video == "cirrus"


def test_debian_12_arm64_is_the_arm64_image_on_virt_with_uefi() -> None:
    spec = get_template("debian-12-arm64").spec
    assert (spec.arch, spec.machine, spec.vcpus, spec.memory_mib) == ("aarch64", "virt", 2, 1024)
    assert spec.boot.kind == "uefi" and spec.boot.order == ("hd",)
    (disk,) = spec.disks
    assert (disk.bus, disk.image) == ("virtio", "debian-12-arm64")
    assert spec.nics[0].forward_ssh and spec.nics[0].model == "virtio"
    assert (spec.video, spec.tablet, spec.usb) == ("ramfb", "virtio", False)


def test_overrides_change_only_what_they_name() -> None:
    spec = resolve("tiny", "web1", Overrides(vcpus=3, memory_mib=300, disk_gib=2))
    base = get_template("tiny").spec
    assert (spec.vcpus, spec.memory_mib, spec.disks[0].size_gib) == (3, 300, 2)
    assert spec.nics == base.nics and spec.machine == base.machine
    assert spec.name == "web1" and spec.template == "tiny"


def test_cdrom_override_fills_the_first_drive_and_boots_from_it(tmp_path: Path) -> None:
    spec = resolve("q35-virtio", "inst", Overrides(cdrom=tmp_path / "x.iso"))
    assert spec.cdroms[0].iso == tmp_path / "x.iso"
    assert spec.boot.order[0] == "cdrom"


@pytest.mark.parametrize(
    ("name", "overrides", "field"),
    [
        ("bad name", Overrides(), "name"),
        ("-dash", Overrides(), "name"),
        ("ok", Overrides(vcpus=0), "vcpus"),
        ("ok", Overrides(memory_mib=1), "memory_mib"),
        ("ok", Overrides(disk_gib=0), "disks.0.size_gib"),
        ("ok", Overrides(accel="fast"), "accel"),
    ],
)
def test_invalid_overrides_name_the_field(name: str, overrides: Overrides, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve("tiny", name, overrides)
    assert caught.value.field == field
    assert "\n" not in str(caught.value)


def test_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(NotFound, match="known: debian-12, debian-12-arm64, legacy-pc, q35-virtio, tiny, tiny-arm64"):
        get_template("nope")


def test_user_template_extends_a_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMDECK_CONFIG_DIR", str(tmp_path))
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "big-tiny.yaml").write_text("extends: tiny\nvcpus: 4\nboot: {cmdline_extra: quiet}\n")
    template = get_template("big-tiny")
    assert template.spec.vcpus == 4
    # nested mappings merge: the image comes from tiny, the extra cmdline from the user
    assert template.spec.boot.image == "tiny" and template.spec.boot.cmdline_extra == "quiet"
    assert template.origin.endswith("big-tiny.yaml")


def test_user_template_overrides_a_builtin_of_the_same_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMDECK_CONFIG_DIR", str(tmp_path))
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "tiny.yaml").write_text("extends: tiny\nmemory_mib: 128\n")
    assert get_template("tiny").spec.memory_mib == 128


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vcpus: [1", "not valid YAML"),
        ("- a list", "expected a mapping"),
        ("machine: virt", "machine 'virt' is not available for x86_64"),
        ("machine: q35\ndisks: [{bus: ide, size_gib: 1}]", "bus 'ide' does not exist on machine 'q35'"),
        ("colour: blue", "colour: Extra inputs are not permitted"),
        ("extends: loop", "extends itself"),
    ],
)
def test_bad_user_templates_give_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.setenv("VMDECK_CONFIG_DIR", str(tmp_path))
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "loop.yaml").write_text(text)
    with pytest.raises(InvalidInput, match=message):
        get_template("loop")


@pytest.mark.parametrize("network", ["bad\nname", "", "a b", "../x"])
def test_network_names_are_validated(network: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve("tiny", "ok", Overrides(network=network))
    assert caught.value.field == "nics.0.network"


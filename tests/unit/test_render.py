"""Golden-file tests for spec -> domain XML, and libvirt's acceptance of every template's XML.

Regenerate the goldens after an intended change with:
    VMDECK_REGENERATE=1 .venv/bin/pytest tests/unit/test_render.py
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import libvirt
import pytest

from testdriver import open_test_host
from vmdeck.domxml.parse import parse_domain
from vmdeck.domxml.render import RenderContext, render_domain
from vmdeck.spec.templates import Overrides, list_templates, resolve

GOLDEN = Path(__file__).parent / "data" / "golden"
TEMPLATES = [t.name for t in list_templates()]


def _context(spec_disks: int, domain_type: str = "qemu") -> RenderContext:
    paths = tuple(Path(f"/var/lib/vmdeck/pool/golden-vd{chr(97 + i)}.qcow2") for i in range(spec_disks))
    return RenderContext(
        domain_type=domain_type,
        disk_paths=paths,
        owned_volumes=paths,
        kernel=Path("/var/lib/vmdeck/images/tiny-x86_64/vmlinuz"),
        initrd=Path("/var/lib/vmdeck/images/tiny-x86_64/initrd.img"),
        cmdline="console=ttyS0",
        serial_log=Path("/var/log/libvirt/qemu/golden-serial.log"),
        accel_reason="golden",
    )


def _render(template: str, domain_type: str = "qemu", **overrides: object) -> str:
    spec = resolve(template, "golden", Overrides(**overrides))  # type: ignore[arg-type]
    return render_domain(spec, _context(len(spec.disks), domain_type))


def _compare(name: str, actual: str) -> None:
    path = GOLDEN / f"{name}.xml"
    if os.environ.get("VMDECK_REGENERATE"):
        path.write_text(actual)
    if not path.exists():  # a missing golden file is a failure, never a new golden that passes
        pytest.fail(f"no golden file {path}: run with VMDECK_REGENERATE=1 once and review it")
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), str(path), "rendered"))
        pytest.fail(f"rendered XML differs from the golden file:\n{diff}")


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_matches_golden(template: str) -> None:
    _compare(template, _render(template))


def test_kvm_uses_host_passthrough_golden() -> None:
    _compare("tiny-kvm", _render("tiny", domain_type="kvm"))


def test_windows_under_kvm_has_hyperv_enlightenments_golden() -> None:
    _compare("windows-kvm", _render("windows", domain_type="kvm"))


def test_overrides_golden() -> None:
    xml = _render("q35-virtio", vcpus=4, memory_mib=4096, disk_gib=40, cdrom=Path("/srv/iso/debian.iso"))
    _compare("q35-virtio-overrides", xml)


@pytest.mark.parametrize("template", TEMPLATES)
def test_libvirt_accepts_and_starts_every_template(template: str, tmp_path: Path) -> None:
    """libvirt's test driver validates the XML against its schema, defines it and runs it."""
    xml = _render(template)
    with open_test_host(tmp_path) as host:
        dom = host.conn.raw.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        dom.create()
        assert dom.isActive()
        view = parse_domain(dom.XMLDesc(0))
        spec = resolve(template, "golden")
        assert (view.vcpus, view.memory_mib, view.arch) == (spec.vcpus, spec.memory_mib, spec.arch)
        assert view.template == template
        assert len([d for d in view.disks if d.device == "disk"]) == len(spec.disks)
        assert len(view.cdroms) == len(spec.cdroms)
        assert view.owned_volumes == tuple(d.source for d in view.disks if d.device == "disk")


def test_every_render_context_field_reaches_the_xml() -> None:
    """Guard: a context field that never shows in any golden is a mapping nobody exercises."""
    xml = "".join((GOLDEN / f"{name}.xml").read_text() for name in [*TEMPLATES, "tiny-kvm"])
    for needle in ("golden-vda.qcow2", "vmlinuz", "initrd.img", "console=ttyS0", "golden-serial.log",
                   'reason="golden"', "owned-volume", "host-passthrough", 'type="socket"', "pcie-root-port",
                   "org.qemu.guest_agent.0", "virtio-scsi"):
        assert needle in xml, needle


def test_uefi_boot_asks_libvirt_for_efi_firmware(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMDECK_CONFIG_DIR", str(tmp_path))
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "q35-uefi.yaml").write_text("extends: q35-virtio\nboot: {kind: uefi}\n")
    spec = resolve("q35-uefi", "golden")
    xml = render_domain(spec, _context(len(spec.disks)))
    assert '<os firmware="efi">' in xml
    with open_test_host(tmp_path) as host:
        dom = host.conn.raw.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        assert parse_domain(dom.XMLDesc(0)).boot_kind == "uefi"


def test_tcg_translation_cache_size_reaches_libvirt(tmp_path: Path) -> None:
    """tcg_tb_cache_mib: libvirt's <features><tcg><tb-cache> under TCG (what density needs), nothing under KVM."""
    spec = resolve("tiny", "golden").model_copy(update={"tcg_tb_cache_mib": 16})
    xml = render_domain(spec, _context(len(spec.disks)))
    assert "<tcg>" in xml and "<tb-cache unit=\"MiB\">16</tb-cache>" in xml
    assert "<tcg>" not in render_domain(spec, _context(len(spec.disks), "kvm"))
    with open_test_host(tmp_path) as host:
        dom = host.conn.define(xml, validate=True)
        assert "<tb-cache unit='KiB'>16384</tb-cache>" in dom.xml()


def _seeded_context(base_image: str) -> RenderContext:
    """The render context of VM "golden" made from library image `base_image`: overlay, seed, SSH forward."""
    return RenderContext(
        domain_type="qemu",
        disk_paths=(Path("/var/lib/vmdeck/pool/golden-vda.qcow2"),),
        owned_volumes=(Path("/var/lib/vmdeck/pool/golden-vda.qcow2"), Path("/var/lib/vmdeck/pool/golden-seed.iso")),
        serial_log=Path("/var/log/libvirt/qemu/golden-serial.log"),
        accel_reason="golden",
        ssh_port=40022,
        ssh_mac="52:54:00:12:34:56",
        seed=Path("/var/lib/vmdeck/pool/golden-seed.iso"),
        login_user="alice",
        base_image=base_image,
    )


def test_debian_image_vm_golden(tmp_path: Path) -> None:
    """A VM from a library image: overlay disk, read-only seed disk, loopback SSH forward, login user."""
    spec = resolve("debian-12", "golden", Overrides(disk_gib=8))
    ctx = _seeded_context("debian-12")
    xml = render_domain(spec, ctx)
    _compare("debian-12-seeded", xml)
    with open_test_host(tmp_path) as host:
        dom = host.conn.raw.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        view = parse_domain(dom.XMLDesc(0))
    # The test driver drops <qemu:commandline> (only the QEMU driver keeps it): read the forward from ours.
    (forward,) = parse_domain(xml).port_forwards
    assert (forward.address, forward.host_port, forward.guest_port) == ("127.0.0.1", 40022, 22)
    assert view.extra["login-user"] == "alice" and view.extra["base-image"] == "debian-12"
    seed = next(d for d in view.disks if d.source and d.source.endswith("seed.iso"))
    assert seed.readonly and seed.format == "raw" and seed.owned


def test_debian_12_arm64_vm_golden(tmp_path: Path) -> None:
    """The arm64 image's VM: aarch64 virt with UEFI (AAVMF, no Secure Boot) and ACPI, a Cortex-A57 under
    TCG, ramfb for the screen, the SSH NIC on the virt machine's PCIe root bus, the seed disk."""
    spec = resolve("debian-12-arm64", "golden", Overrides(disk_gib=8))
    ctx = _seeded_context("debian-12-arm64")
    xml = render_domain(spec, ctx)
    _compare("debian-12-arm64-seeded", xml)
    assert '<type arch="aarch64" machine="virt">hvm</type>' in xml and '<os firmware="efi">' in xml
    assert '<feature enabled="no" name="secure-boot"/>' in xml and "<acpi/>" in xml
    assert "cortex-a57" in xml and '<model type="ramfb"/>' in xml
    assert "virtio-net-pci,netdev=vmdeck-ssh0,mac=52:54:00:12:34:56,bus=pcie.0,addr=0x10" in xml
    with open_test_host(tmp_path) as host:
        dom = host.conn.raw.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        view = parse_domain(dom.XMLDesc(0))
    assert (view.arch, view.vcpus, view.memory_mib, view.boot_kind) == ("aarch64", 2, 1024, "uefi")
    assert view.extra["base-image"] == "debian-12-arm64" and view.extra["login-user"] == "alice"
    (forward,) = parse_domain(xml).port_forwards
    assert (forward.address, forward.host_port, forward.guest_port) == ("127.0.0.1", 40022, 22)
    seed = next(d for d in view.disks if d.source and d.source.endswith("seed.iso"))
    assert seed.readonly and seed.owned


def test_kvm_on_an_arm64_host_passes_the_host_cpu_through() -> None:
    """No cpu_model in debian-12-arm64: an arm64 host with KVM gets its own CPU and GICv3."""
    xml = _render("debian-12-arm64", domain_type="kvm")
    assert 'mode="host-passthrough"' in xml and '<gic version="3"/>' in xml and "cortex-a57" not in xml


def test_the_ssh_nic_sits_on_each_machines_root_bus() -> None:
    from vmdeck.domxml.render import ssh_forward_args

    for machine, bus in (("q35", "pcie.0"), ("virt", "pcie.0"), ("pc", "pci.0")):
        assert f"bus={bus}," in ssh_forward_args("virtio", "52:54:00:00:00:01", 40000, machine)[-1]

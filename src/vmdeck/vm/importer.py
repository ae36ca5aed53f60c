"""Import a VM made elsewhere: plan it from an OVA/OVF or a disk image, convert its disks, create it (vm layer).

`plan_import` reads the package (vmdeck.images.package), the OVF (vmdeck.images.ovf)
and each disk's facts (qemu-img info) and resolves a VmSpec on a template: what
`vmdeck import --plan` prints, with everything the source asks for that vmdeck
cannot give. `import_vm` checks the manifest, converts each disk with qemu-img
into vmdeck's pool (qcow2, capacity kept) and creates the VM through
vmdeck.vm.create, which owns the converted volumes from then on: `vmdeck delete`
removes them. Any failure removes every file the import wrote.

Quota is the caller's: it reserves `ImportPlan.demand_numbers()` around `import_vm`
(the store layer sits above this one).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vmdeck.domxml.names import next_target
from vmdeck.domxml.parse import DomainView
from vmdeck.errors import InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.images.ovf import OvfPlan, plan_from_ovf
from vmdeck.images.package import Package, open_package
from vmdeck.images.qemuimg import FORMAT_BY_SUFFIX, convert_to_qcow2, disk_facts
from vmdeck.spec.models import BUSES, VmSpec
from vmdeck.spec.templates import Overrides, describe_validation_error, resolve
from vmdeck.storage.journal import Journal

__all__ = ["ImportOptions", "ImportPlan", "PlannedImportDisk", "plan_import", "import_vm", "vm_name_from"]

Progress = Callable[[str], None]
GIB = 1024**3


@dataclass(frozen=True)
class ImportOptions:
    name: str | None = None
    template: str | None = None
    firmware: str | None = None  # "bios" or "uefi"
    disk_bus: str | None = None
    nic_model: str | None = None


@dataclass(frozen=True)
class PlannedImportDisk:
    label: str  # the file in the package, or the image's name
    source: str  # what qemu-img reads
    format: str  # qemu's name of the source format
    capacity: int  # bytes of the VM's disk
    bus: str
    controller: str  # what the source put it on, "" when it says nothing
    target: str


@dataclass(frozen=True)
class ImportPlan:
    source: Path
    kind: str  # "ova", "ovf" or "disk"
    spec: VmSpec
    disks: tuple[PlannedImportDisk, ...]
    not_honoured: tuple[str, ...]
    os: str
    package: Package = field(repr=False, compare=False)

    def demand_numbers(self) -> dict[str, Any]:
        """What the import takes from a project's quota (store.quota.Demand's fields)."""
        return {"instances": 1, "vcpus": self.spec.vcpus, "memory_mib": self.spec.memory_mib,
                "disk_gib": round(sum(d.capacity for d in self.disks) / GIB, 3)}

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        return {"name": spec.name, "source": str(self.source), "kind": self.kind, "template": spec.template,
                "os": self.os, "machine": spec.machine, "vcpus": spec.vcpus, "memory_mib": spec.memory_mib,
                "firmware": spec.boot.kind, "secure_boot": spec.secure_boot, "tpm": spec.tpm,
                "disks": [{"file": d.label, "format": d.format, "capacity_bytes": d.capacity, "bus": d.bus,
                           "target": d.target, "controller": d.controller} for d in self.disks],
                "nics": [{"model": n.model, "network": n.network} for n in spec.nics],
                "cdroms": [{"bus": c.bus} for c in spec.cdroms],
                "not_honoured": list(self.not_honoured)}


def vm_name_from(text: str) -> str:
    """A valid VM name from an OVF's name or a file's stem ("Web Server (old)" -> "Web-Server-old")."""
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-._+")[:63]
    return name or "imported"


def _fmt_for(href: str, ovf_format: str) -> str:
    if "vmdk" in ovf_format.lower():
        return "vmdk"
    suffix = Path(href).suffix.lower()
    if suffix in FORMAT_BY_SUFFIX:
        return FORMAT_BY_SUFFIX[suffix]
    raise InvalidInput(f"cannot tell the format of the package's disk {href} (use .vmdk, .vhdx, .vhd, .qcow2 or .img)")


def _fit_bus(bus: str, machine: str, label: str, notes: list[str]) -> str:
    """The source's bus, or the closest one `machine` has (q35 has no IDE, i440FX no SATA)."""
    if bus in BUSES[machine]:
        return bus
    replacement = {"ide": "sata", "sata": "ide"}.get(bus, "virtio")
    if replacement not in BUSES[machine]:
        replacement = "virtio"
    notes.append(f"disk {label}: machine {machine} has no {bus.upper()} bus, it goes on {replacement}")
    return replacement


def _ovf_disks(package: Package, ovf: OvfPlan, notes: list[str]) -> list[tuple[str, str, str, int, str, str]]:
    """(label, source, format, capacity, bus, controller) of each OVF disk, capacity the larger of the
    OVF's and the image's."""
    found = []
    for index, disk in enumerate(ovf.disks):
        if disk.href is None:
            raise InvalidInput(f"the OVF's disk {index + 1} has no file (a blank disk): vmdeck imports disks "
                               "with content only")
        fmt = _fmt_for(disk.href, disk.format)
        source = package.source(disk.href, fmt)
        if package.kind == "ova" and fmt == "vmdk" and b"# Disk DescriptorFile" in package.head(disk.href)[:64]:
            # Its extents would be looked for beside the OVA, outside the package: refused before QEMU opens it.
            raise InvalidInput(f"disk {disk.href} is a VMDK descriptor with extents in other files: inside a "
                               "package only single-file VMDKs (streamOptimized, monolithic sparse) are accepted")
        facts = disk_facts(source, fmt, label=disk.href, folder=package.folder if package.kind == "ovf" else None)
        capacity = max(disk.capacity_bytes, facts.virtual_size)
        if disk.capacity_bytes and facts.virtual_size > disk.capacity_bytes:
            notes.append(f"disk {disk.href}: the image holds {facts.virtual_size} bytes, more than the OVF's "
                         f"{disk.capacity_bytes}: the image's size is kept")
        found.append((disk.href, source, fmt, capacity, disk.bus, disk.controller))
    return found


def plan_import(path: Path, options: ImportOptions = ImportOptions()) -> ImportPlan:
    """What importing `path` would create, read-only: nothing is written anywhere."""
    package = open_package(path)
    notes: list[str] = []
    ovf = None
    if package.kind == "disk":
        fmt = FORMAT_BY_SUFFIX[package.path.suffix.lower()]
        facts = disk_facts(str(package.path), fmt, label=package.path.name, folder=package.folder)
        raw_disks = [(package.path.name, str(package.path), fmt, facts.virtual_size, "", "")]
        default_name, template, firmware, os_name = package.path.stem, "q35-virtio", "bios", ""
    else:
        assert package.descriptor is not None
        ovf = plan_from_ovf(package.descriptor)
        notes.extend(ovf.not_honoured)
        raw_disks = _ovf_disks(package, ovf, notes)
        default_name, template, firmware, os_name = ovf.name or package.path.stem, ovf.template, ovf.firmware, ovf.os
    name = options.name or vm_name_from(default_name)
    chosen = options.template or template
    try:
        base = resolve(chosen, name, Overrides(vcpus=ovf.vcpus if ovf else None,
                                               memory_mib=ovf.memory_mib if ovf else None))
    except NotFound:
        if options.template:
            raise
        notes.append(f"template {chosen} for {os_name or 'this system'} is not installed: q35-virtio instead")
        chosen = "q35-virtio"
        base = resolve(chosen, name, Overrides(vcpus=ovf.vcpus if ovf else None,
                                               memory_mib=ovf.memory_mib if ovf else None))
    data = base.model_dump(mode="python")
    if data["boot"]["kind"] != "kernel" or options.firmware:
        data["boot"] = {**data["boot"], "kind": options.firmware or firmware, "order": ["hd", "cdrom"]}
    elif firmware == "uefi":
        notes.append(f"UEFI firmware: template {chosen} boots its own kernel directly")
    wants_secure = bool(ovf and ovf.secure_boot) or data["secure_boot"]
    can_secure = data["boot"]["kind"] == "uefi" and data["machine"] == "q35"
    if wants_secure and not can_secure:
        notes.append(f"Secure Boot: needs UEFI on q35, the VM has {data['boot']['kind']} on {data['machine']}")
    data["secure_boot"] = wants_secure and can_secure
    taken = [c["target"] for c in data["cdroms"] if c.get("target")]
    disks = []
    for label, source, fmt, capacity, bus, controller in raw_disks:
        wanted = (options.disk_bus or bus or (data["disks"][0]["bus"] if data["disks"] else None)
                  or ("ide" if data["machine"] == "pc" else "virtio"))
        if options.disk_bus and bus and bus != options.disk_bus:
            notes.append(f"disk {label}: on {options.disk_bus} as asked (the source had it on {bus})")
        fitted = _fit_bus(wanted, data["machine"], label, notes)
        target = next_target(fitted, taken)
        taken.append(target)
        disks.append(PlannedImportDisk(label, source, fmt, capacity, fitted, controller, target))
    # Each disk's source is the volume it will be converted into, named like create's own volumes.
    data["disks"] = [{"bus": d.bus, "source": Path(f"{name}-{d.target}.qcow2"), "format": "qcow2",
                      "target": d.target} for d in disks]
    if ovf is not None:
        nics = [{"model": options.nic_model or nic.model, "network": "user"} for nic in ovf.nics]
        data["nics"] = nics
    elif options.nic_model:
        data["nics"] = [{**nic, "model": options.nic_model} for nic in data["nics"]]
    data.update(name=name, template=chosen)
    try:
        spec = VmSpec.model_validate(data)
    except ValidationError as err:
        field_name, message = describe_validation_error(err)
        raise InvalidInput(f"{field_name}: {message}", field=field_name) from err
    return ImportPlan(source=package.path, kind=package.kind, spec=spec, disks=tuple(disks),
                      not_honoured=tuple(notes), os=os_name, package=package)


def _percent_reporter(label: str, progress: Progress) -> Callable[[float], None]:
    """qemu-img's percentages as progress lines, one per tenth."""
    shown = [-1]

    def report(percent: float) -> None:
        if int(percent) // 10 > shown[0]:
            shown[0] = int(percent) // 10
            progress(f"{label}: {int(percent)}%")

    return report


def _verify_in_background(package: Package, hrefs: list[str]) -> Callable[[], None]:
    """Check the manifest's sums in a thread while qemu-img converts (hashing releases the GIL): the
    returned wait() raises the mismatch, if any. Nothing converted is kept before it passed."""
    if not package.manifest:
        return lambda: None
    failed: list[BaseException] = []

    def run() -> None:
        try:
            package.verify(hrefs)
        except BaseException as err:  # handed to wait(), in the importing thread
            failed.append(err)

    worker = threading.Thread(target=run, name="manifest-check", daemon=True)
    worker.start()

    def wait() -> None:
        worker.join()
        if failed:
            raise failed[0]

    return wait


def _convert_all(plan: ImportPlan, folder: Path, journal: Journal, written: list[Path],
                 progress: Progress, verified: Callable[[], None]) -> list[Path]:
    from vmdeck.errors import Conflict

    paths = []
    try:
        for disk in plan.disks:
            dest = folder / f"{plan.spec.name}-{disk.target}.qcow2"
            if dest.exists() or dest.is_symlink():
                raise Conflict(f"volume {dest.name!r} already exists in the pool")
            journal.volume(dest.name)
            progress(f"converting {disk.label} ({disk.format}, {disk.capacity / GIB:.2f} GiB) to qcow2 "
                     f"for {disk.target}")
            written.append(dest)
            convert_to_qcow2(disk.source, disk.format, dest, disk.capacity, _percent_reporter(disk.label, progress))
            paths.append(dest)
    except VmdeckError:
        verified()  # a package that fails its manifest explains a failed conversion better
        raise
    verified()
    return paths


def import_vm(host: Host, plan: ImportPlan, progress: Progress = lambda _m: None, *,
              project: str | None = None) -> DomainView:
    """Verify, convert and create: the VM `plan.spec` with its disks converted into the pool."""
    from vmdeck.errors import Conflict
    from vmdeck.storage.pool import delete_volume, ensure_pool, pool_path, refresh_pool
    from vmdeck.vm.create import create_vm

    if not host.is_local:
        raise InvalidInput("import converts the disks into the pool's folder: run it on the host itself "
                           "(--host with the local host)")
    if host.exists(plan.spec.name):
        raise Conflict(f"a VM named {plan.spec.name!r} already exists")
    if plan.package.manifest:
        progress("checking the manifest's checksums while converting")
    elif plan.kind != "disk":
        progress("the package has no manifest: its files are not checked")
    pool = ensure_pool(host)
    folder = Path(pool_path(pool))
    written: list[Path] = []
    with Journal("import", plan.spec.name) as journal:
        verified = _verify_in_background(plan.package, [d.label for d in plan.disks])
        try:
            paths = _convert_all(plan, folder, journal, written, progress, verified)
            refresh_pool(pool)
            disks = tuple(d.model_copy(update={"source": path}) for d, path in zip(plan.spec.disks, paths,
                                                                                   strict=True))
            spec = plan.spec.model_copy(update={"disks": disks})
            view = create_vm(host, spec, progress, project=project, adopt=tuple(paths))
        except BaseException:
            for path in written:
                if path.exists():
                    try:
                        delete_volume(host, path)
                    finally:
                        path.unlink(missing_ok=True)
            journal.close()
            raise
        journal.close()
    return view

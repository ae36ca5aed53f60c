"""Create a VM: template + overrides -> volumes -> domain XML -> defined in libvirt.

Everything created on the way is undone if a later step fails: a failed
create leaves no volume and no half-defined domain behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from vmdeck.domxml.devices import add_root_ports, free_root_ports
from vmdeck.domxml.names import next_target
from vmdeck.domxml.parse import DomainView, parse_domain
from vmdeck.domxml.render import RenderContext, render_domain
from vmdeck.errors import Conflict, HostError, InvalidInput, NotFound, VmdeckError
from vmdeck.host.accel import SERIAL_LOG_DIR, choose_domain_type
from vmdeck.host.capabilities import host_facts
from vmdeck.host.connection import Host
from vmdeck.host.qemu_access import check_qemu_access
from vmdeck.spec.models import VmSpec
from vmdeck.storage.journal import Journal
from vmdeck.storage.pool import create_volume, delete_volume

__all__ = ["create_vm", "check_iso", "serial_log_path"]

Progress = Callable[[str], None]


def serial_log_path(name: str) -> Path:
    return SERIAL_LOG_DIR / f"{name}-serial.log"


def check_iso(path: Path) -> Path:
    """An ISO must exist, be a regular readable file: the guest reads it, never writes it."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise NotFound(f"ISO {path} does not exist")
    if path.is_dir():
        raise InvalidInput(f"ISO {path} is a directory, not an image file (vmdeck iso make DIR -o FILE.iso builds one)")
    if not path.is_file() and not path.is_block_device():
        raise InvalidInput(f"ISO {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise InvalidInput(f"ISO {path} is not readable")
    return path


def _check_fits_host(host: Host, spec: VmSpec) -> None:
    facts = host_facts(host)
    if spec.vcpus > facts.pcpus * 8:
        raise InvalidInput(f"{spec.vcpus} vCPUs is beyond this host ({facts.pcpus} CPUs, at most 8x overcommit)",
                           field="vcpus")
    if spec.memory_mib > facts.memory_mib:
        raise InvalidInput(f"{spec.memory_mib} MiB of memory is more than this host has ({facts.memory_mib} MiB)",
                           field="memory_mib")
    # libvirt's test driver advertises only i686 yet runs any arch: only real hypervisors are held to it.
    if facts.driver != "TEST" and spec.arch not in facts.emulated_arches:
        raise HostError(f"this host cannot run {spec.arch} guests (install qemu-system for it)")


def create_vm(host: Host, spec: VmSpec, progress: Progress = lambda _m: None) -> DomainView:
    if host.exists(spec.name):
        raise Conflict(f"a VM named {spec.name!r} already exists")
    _check_fits_host(host, spec)
    cdroms = tuple(c.model_copy(update={"iso": check_iso(c.iso)}) if c.iso else c for c in spec.cdroms)
    spec = spec.model_copy(update={"cdroms": cdroms})
    for disk in spec.disks:
        if disk.source is not None and not Path(disk.source).exists():
            raise NotFound(f"disk image {disk.source} does not exist")
    for cdrom in spec.cdroms:
        if cdrom.iso:
            check_qemu_access(host, Path(cdrom.iso))
    for disk in spec.disks:
        if disk.source is not None:
            check_qemu_access(host, Path(disk.source), write=True)
    domain_type, reason = choose_domain_type(host, spec.arch, spec.accel)
    progress(f"accelerator: {'KVM' if domain_type == 'kvm' else 'TCG'} ({reason})")
    kernel = initrd = None
    cmdline = ""
    if spec.boot.kind == "kernel":
        if spec.boot.image != "tiny":
            raise NotFound(f"unknown guest image {spec.boot.image!r} (known: tiny)")
        from vmdeck.images.tiny import build_tiny, find_tiny

        image = find_tiny(spec.arch)
        if image is None:
            progress(f"building the tiny {spec.arch} guest image (once)")
            image = build_tiny(spec.arch, progress=progress)
        kernel, initrd, cmdline = image.kernel, image.initrd, image.cmdline
    created: list[Path] = []
    paths: list[Path] = []
    taken: list[str] = []
    # The journal names each volume before it exists: if this process is killed before the VM is
    # defined (which records the volumes in its metadata), `vmdeck doctor` finds and removes them.
    with Journal("create", spec.name) as journal:
        try:
            for disk in spec.disks:
                target = disk.target or next_target(disk.bus, taken)
                taken.append(target)
                if disk.source is not None:
                    paths.append(Path(disk.source).absolute())
                    continue
                progress(f"creating {disk.size_gib:g} GiB {disk.format} volume for {target}")
                volume_name = f"{spec.name}-{target}.{disk.format}"
                journal.volume(volume_name)
                path = create_volume(host, volume_name, disk.size_gib or 0, disk.format)
                created.append(path)
                paths.append(path)
            ctx = RenderContext(
                domain_type=domain_type,
                disk_paths=tuple(paths),
                owned_volumes=tuple(created),
                kernel=kernel,
                initrd=initrd,
                cmdline=cmdline,
                serial_log=serial_log_path(spec.name) if host.is_local else None,
                accel_requested=spec.accel,
                accel_reason=reason,
            )
            return _define(host, spec, ctx)
        except BaseException:
            for path in created:
                delete_volume(host, path)
            journal.close()  # rolled back completely; a failed rollback re-raises and leaves the record
            raise


def _define(host: Host, spec: VmSpec, ctx: RenderContext) -> DomainView:
    try:
        dom = host.conn.define(render_domain(spec, ctx), context=f"define {spec.name}")
    except VmdeckError as err:
        # Two creates of one name racing: the loser's define meets the winner's domain.
        if host.exists(spec.name):
            raise Conflict(f"a VM named {spec.name!r} already exists") from err
        raise
    # libvirt puts the VM's own devices behind the spare root ports first: top them up so
    # that `hotplug_slots` ports stay free for devices hot-plugged later.
    defined = dom.xml()
    missing = spec.hotplug_slots - free_root_ports(defined) if spec.machine in ("q35", "virt") else 0
    if missing > 0:
        dom = host.conn.define(add_root_ports(defined, missing), context=f"define {spec.name}")
        defined = dom.xml()
    return parse_domain(defined)

"""Create a VM: template + overrides -> volumes -> domain XML -> defined in libvirt.

Everything created on the way is undone if a later step fails: a failed
create leaves no volume and no half-defined domain behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

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
from vmdeck.vm.project import check_project_name

if TYPE_CHECKING:
    from vmdeck.images.library import ImageRecord
    from vmdeck.storage.seed import CloudInitConfig

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


def _image_disks(spec: VmSpec) -> dict[int, tuple[ImageRecord, int]]:
    """Library images the spec's disks are linked clones of: (record, capacity) per disk index.
    Checked before anything is created: an unknown image or a --disk below its size stops here."""
    if not any(disk.image for disk in spec.disks):
        return {}
    from vmdeck.images.library import get_image
    from vmdeck.vm.baseimage import overlay_capacity

    found = {}
    for index, disk in enumerate(spec.disks):
        if disk.image:
            record = get_image(disk.image)
            if record.arch != spec.arch:
                raise InvalidInput(f"image {record.name!r} is {record.arch}, the VM is {spec.arch}", field="image")
            found[index] = (record, overlay_capacity(record, disk.size_gib))
    return found


def _seed_files(spec: VmSpec, cloud_init: CloudInitConfig | None) -> tuple[dict[str, str], str] | None:
    """The NoCloud seed's files and the login user (a default seed for image-based VMs without one)."""
    from vmdeck.storage.seed import CloudInitConfig, hostname_for, render_meta_data, render_user_data

    if cloud_init is None:
        if not any(disk.image for disk in spec.disks):
            return None
        cloud_init = CloudInitConfig(hostname=hostname_for(spec.name, None))
    files = {"meta-data": render_meta_data(spec.name, cloud_init.hostname),
             "user-data": render_user_data(cloud_init)}
    if cloud_init.network_config:
        files["network-config"] = cloud_init.network_config
    return files, cloud_init.user


def create_vm(host: Host, spec: VmSpec, progress: Progress = lambda _m: None,
              cloud_init: CloudInitConfig | None = None, *, project: str | None = None,
              adopt: tuple[Path, ...] = ()) -> DomainView:
    """Define the VM (volumes first); `project` is recorded in its metadata (vmdeck.vm.project).
    `adopt`: disk sources already in the pool that become the VM's own (an import's converted disks):
    deleted with the VM, and by a failed create."""
    if project is not None:
        check_project_name(project)
    if host.exists(spec.name):
        raise Conflict(f"a VM named {spec.name!r} already exists")
    _check_fits_host(host, spec)
    images = _image_disks(spec)
    seed = _seed_files(spec, cloud_init)
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
    ssh_port = ssh_mac = None
    if any(nic.forward_ssh for nic in spec.nics):
        from vmdeck.vm.baseimage import free_loopback_port

        ssh_port = free_loopback_port(host)
        forwarded = next(nic for nic in spec.nics if nic.forward_ssh)
        ssh_mac = forwarded.mac or "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))
    created: list[Path] = []
    adopted = {Path(path).absolute() for path in adopt}
    paths: list[Path] = []
    taken: list[str] = []
    seed_path = None
    # The journal names each volume before it exists: if this process is killed before the VM is
    # defined (which records the volumes in its metadata), `vmdeck doctor` finds and removes them.
    with Journal("create", spec.name) as journal:
        try:
            for index, disk in enumerate(spec.disks):
                target = disk.target or next_target(disk.bus, taken)
                taken.append(target)
                if disk.source is not None:
                    paths.append(Path(disk.source).absolute())
                    if Path(disk.source).absolute() in adopted:
                        created.append(Path(disk.source).absolute())
                    continue
                if index in images:
                    from vmdeck.vm.baseimage import create_overlay

                    record, capacity = images[index]
                    progress(f"creating {capacity / 1024**3:.2f} GiB qcow2 overlay for {target} on image {record.name}")
                    volume_name = f"{spec.name}-{target}.qcow2"
                    journal.volume(volume_name)
                    path = create_overlay(host, volume_name, record, capacity)
                    created.append(path)
                    paths.append(path)
                    continue
                progress(f"creating {disk.size_gib:g} GiB {disk.format} volume for {target}")
                volume_name = f"{spec.name}-{target}.{disk.format}"
                journal.volume(volume_name)
                path = create_volume(host, volume_name, disk.size_gib or 0, disk.format)
                created.append(path)
                paths.append(path)
            if seed is not None:
                from vmdeck.storage.seed import build_seed_iso
                from vmdeck.vm.baseimage import upload_volume

                progress("writing the cloud-init NoCloud seed (ISO 9660, label cidata)")
                journal.volume(f"{spec.name}-seed.iso")
                seed_path = upload_volume(host, f"{spec.name}-seed.iso", build_seed_iso(seed[0]))
                created.append(seed_path)
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
                ssh_port=ssh_port,
                ssh_mac=ssh_mac,
                seed=seed_path,
                login_user=seed[1] if seed is not None else None,
                base_image=next((record.name for record, _cap in images.values()), None),
                project=project,
            )
            return _define(host, spec, ctx)
        except BaseException:
            for path in created:
                delete_volume(host, path)
            journal.close()  # rolled back completely; a failed rollback re-raises and leaves the record
            raise


def _define(host: Host, spec: VmSpec, ctx: RenderContext) -> DomainView:
    try:
        from vmdeck.vm.networks import clean_traffic_nics, vmdeck_networks

        xml = clean_traffic_nics(render_domain(spec, ctx), vmdeck_networks(host, {nic.network for nic in spec.nics}))
        dom = host.conn.define(xml, context=f"define {spec.name}")
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

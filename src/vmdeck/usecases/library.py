"""Changes to the shared libraries: disk images (administrators) and ISOs (a project's, within its
ISO quota) (use-case layer)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vmdeck.errors import Conflict, NotFound
from vmdeck.host.connection import Host
from vmdeck.images.library import ImageRecord
from vmdeck.store.quota import publish_iso
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited
from vmdeck.usecases.common import Progress, quiet
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.services import Services
from vmdeck.usecases.tasks import Task, tracked

__all__ = ["build_image", "import_image", "remove_image", "uploading", "publish", "delete_iso"]


def build_image(svc: Services, actor: Actor, name: str, arch: str, *, force: bool = False,
                progress: Progress = quiet) -> Any:
    """Build the tiny guest (its GuestImage) or a Debian image into the library (its ImageRecord)."""
    with audited(svc, actor, "image.manage", None, None, status=201):
        authorize(actor, "image.manage", None)
        with tracked(svc, actor, "image.build", f"{name} ({arch})") as task:
            progress = task.reporter(progress)
            if name == "tiny":
                from vmdeck.images.tiny import build_tiny

                built: Any = build_tiny(arch, progress=progress, force=force)
            else:
                from vmdeck.images.debian import build_image as build_debian

                built = build_debian(name, arch, progress=progress, force=force)
            task.result = f"built {name} ({arch})"
    return built


def import_image(svc: Services, actor: Actor, source: Path, *, name: str | None = None, os_name: str = "linux",
                 arch: str = "x86_64") -> ImageRecord:
    from vmdeck.images import library

    with audited(svc, actor, "image.manage", None, None, status=201):
        authorize(actor, "image.manage", None)
        with tracked(svc, actor, "image.import", name or source.name) as task:
            record = library.import_image(source, name=name, os_name=os_name, arch=arch)
            task.result = f"imported image {record.name}"
    return record


def remove_image(svc: Services, actor: Actor, host: Host, name: str) -> ImageRecord:
    """Delete an image from the library, refused while VMs use it as their backing file."""
    from vmdeck.images import library
    from vmdeck.vm.baseimage import vms_using_image

    with audited(svc, actor, "image.manage", None, None):
        authorize(actor, "image.manage", None)
        record = library.get_image(name)
        removed = library.remove_image(name, vms_using_image(host, Path(record.path)))
    return removed


@contextlib.contextmanager
def uploading(svc: Services, actor: Actor, project: str | None, name: str, size: int | None) -> Iterator[Task]:
    """The task of an ISO upload, from its first byte to its publication: the caller reports the bytes
    received against `size` (None: not declared) and ends with `publish`."""
    with tracked(svc, actor, "iso.upload", name, project=project) as task:
        task.progress(0, size)
        yield task
        task.result = f"uploaded {name}"


def publish(svc: Services, actor: Actor, host: Host, project: str | None, name: str, size_bytes: int,
            put: Callable[[], None]) -> None:
    """The last step of an ISO upload: charge `size_bytes` to `project`'s ISO quota and `put` the file in the
    library under the same lock (None: a shared ISO of the administrator's, held to no quota)."""
    with audited(svc, actor, "iso.upload", project, None, status=201):
        authorize(actor, "iso.upload", project)
        publish_iso(svc.db, host, project, name, size_bytes, put)


def delete_iso(svc: Services, actor: Actor, path: Path, users: Callable[[], list[str]]) -> None:
    """Delete an ISO of the library that no VM has in a drive (Conflict naming the VMs otherwise)."""
    project = svc.tenancy.iso_owner(path.name)
    with audited(svc, actor, "iso.delete", project, None):
        authorize(actor, "iso.delete", project)
        if not path.is_file():
            raise NotFound(f"the ISO library has no {path.name!r}")
        using = users()
        if using:
            raise Conflict(f"{path.name} is in a drive of {', '.join(using)}: eject it first")
        path.unlink()
        svc.tenancy.forget_iso(path.name)

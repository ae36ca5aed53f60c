"""Files on a libvirt host that does not share this machine's files: through libvirt's storage streams
(core layer).

A restore onto another host, and a backup of a VM there, reach that host's pool, NVRAM folder and
seeds only through libvirt, as offline migration does: a volume upload writes a file there, a
volume download reads one. A file outside every pool (a UEFI variable store in libvirt's NVRAM
folder) is reached through a transient `dir` pool on its folder, stopped again at once (stopping a
pool leaves its files alone).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

from vmdeck.domxml.storage import Owner, pool_target_path, pool_xml, volume_format_of, volume_owner_of, volume_xml
from vmdeck.errors import InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import StoragePool, StorageVolume
from vmdeck.paths import pool_name
from vmdeck.storage.pool import ensure_pool, pool_free_bytes, refresh_pool

__all__ = ["upload_file", "upload_into_folder", "download_file", "download_folder", "delete_in_folder",
           "volume_format"]

_CHUNK = 1 << 20


def _send(host: Host, volume: StorageVolume, source: Path) -> None:
    stream = host.conn.new_stream(context=f"upload {source.name}")
    volume.upload(stream)
    try:
        with source.open("rb") as data:
            while chunk := data.read(_CHUNK):
                stream.send_all(chunk)
        stream.finish()
    except BaseException:
        stream.close_quietly()
        raise


def _new_volume(host: Host, pool: StoragePool, name: str, source: Path, owner: Owner | None = None
                ) -> StorageVolume:
    # Raw, exactly the file's size, nothing allocated: the upload writes the file's bytes as they are
    # (a qcow2 stays a qcow2; libvirt sees its format at the next refresh).
    volume = pool.create_volume(volume_xml(name, source.stat().st_size, "raw", owner))
    try:
        _send(host, volume, source)
    except BaseException:
        with contextlib.suppress(VmdeckError):
            volume.delete()
        raise
    return volume


def upload_file(host: Host, source: Path, name: str) -> str:
    """Copy the local file `source` into `host`'s vmdeck pool as volume `name`; its path there."""
    pool = ensure_pool(host)
    if source.stat().st_size > pool_free_bytes(host):
        raise InvalidInput(f"{source.name} ({source.stat().st_size / 2**30:.1f} GiB) does not fit in pool "
                           f"'{pool_name()}' on {host.uri}")
    path = _new_volume(host, pool, name, source).path()
    refresh_pool(pool)
    return path


@contextlib.contextmanager
def _folder_pool(host: Host, folder: str, owner: Owner | None = None, *, make: bool = True
                 ) -> Iterator[StoragePool]:
    """A running pool over `folder` on `host`: one there already, else a transient one for the call
    (which makes the folder, given to `owner`, when it is missing and `make`; else NotFound)."""
    for pool in host.conn.active_pools():
        if pool_target_path(pool.xml()) == folder:
            refresh_pool(pool)
            yield pool
            return
    name = f"vmdeck-files-{secrets.token_hex(4)}"
    try:
        pool = host.conn.create_transient_pool(pool_xml(name, Path(folder)))
    except VmdeckError as err:  # the folder does not exist (yet)
        if not make:
            raise NotFound(f"no folder {folder} on {host.uri}") from err
        pool = host.conn.create_transient_pool(pool_xml(name, Path(folder), owner), build=True)
    try:
        yield pool
    finally:
        with contextlib.suppress(VmdeckError):
            pool.destroy()


def upload_into_folder(host: Host, source: Path, dest: str, *, owner: Owner | None = None,
                       folder_owner: Owner | None = None) -> None:
    """Copy the local file `source` to the path `dest` on `host` (a folder outside vmdeck's pool), given to
    `owner`; a missing folder is made, given to `folder_owner`."""
    folder, name = str(Path(dest).parent), Path(dest).name
    with _folder_pool(host, folder, folder_owner) as pool:
        with contextlib.suppress(NotFound):
            pool.volume(name).delete()  # an earlier file of that name (a VM of that name deleted earlier)
        _new_volume(host, pool, name, source, owner)


def delete_in_folder(host: Host, path: str) -> None:
    with contextlib.suppress(VmdeckError), _folder_pool(host, str(Path(path).parent), make=False) as pool:
        pool.volume(Path(path).name).delete()


def download_file(host: Host, path: str, dest: Path, *, length: int = 0) -> None:
    """Copy the file at `path` on `host` (the first `length` bytes, when not 0) to the local `dest`."""
    with contextlib.ExitStack() as stack:
        try:
            volume = host.conn.volume_at(path)
        except NotFound:
            pool = stack.enter_context(_folder_pool(host, str(Path(path).parent), make=False))
            volume = pool.volume(Path(path).name)
        stream = host.conn.new_stream(context=f"download {path}")
        volume.download(stream, length)
        try:
            with dest.open("wb") as out:
                while chunk := stream.recv(_CHUNK):
                    out.write(chunk)
            stream.finish()
        except BaseException:
            stream.close_quietly()
            raise


def download_folder(host: Host, folder: str, dest: Path) -> dict[str, Owner | None]:
    """Copy every file of `folder` on `host` (not its sub-folders) into the local folder `dest`; their names
    and owners there."""
    with _folder_pool(host, folder, make=False) as pool:
        owners = {name: volume_owner_of(pool.volume(name).xml()) for name, _path in pool.volumes()}
    for name in owners:
        download_file(host, f"{folder}/{name}", dest / name)
    return owners


def volume_format(host: Host, path: str) -> tuple[str, str]:
    """(format, qcow2 compat) of the volume at `path` on `host`, as libvirt reads its header; ("", "")
    when no pool there holds it."""
    try:
        return volume_format_of(host.conn.volume_at(path).xml())
    except VmdeckError:
        return "", ""

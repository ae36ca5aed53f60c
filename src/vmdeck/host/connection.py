"""The connection to one libvirt host, and the one place libvirt's errors become vmdeck's.

`--connect URI` / `VMDECK_URI` choose the host; the default is the local
system instance (qemu:///system), as virt-manager and virsh do for root.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import libvirt

from vmdeck.errors import Conflict, GuestError, HostError, InvalidInput, NotFound, VmdeckError

__all__ = ["DEFAULT_URI", "Host", "connect", "translate", "libvirt_errors"]

DEFAULT_URI = "qemu:///system"

# libvirt prints every error to stderr by default; vmdeck reports them itself, once.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_NOT_FOUND = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
    libvirt.VIR_ERR_NO_NETWORK,
    libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
}
_CONFLICT = {libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_DOM_EXIST, libvirt.VIR_ERR_STORAGE_VOL_EXIST}
_INVALID = {
    libvirt.VIR_ERR_INVALID_ARG,
    libvirt.VIR_ERR_XML_ERROR,
    libvirt.VIR_ERR_XML_DETAIL,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
}
_GUEST = {
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
    libvirt.VIR_ERR_AGENT_UNSYNCED,
}
_HOST = {
    libvirt.VIR_ERR_NO_SUPPORT,
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_AUTH_FAILED,
}


def translate(err: libvirt.libvirtError, context: str = "") -> VmdeckError:
    """Map a libvirtError to the vmdeck error a user or an API client can act on."""
    code = err.get_error_code()
    text = (err.get_error_message() or str(err)).strip()
    message = f"{context}: {text}" if context else text
    if code in _NOT_FOUND:
        return NotFound(message)
    if code in _CONFLICT:
        return Conflict(message)
    if code in _INVALID:
        return InvalidInput(message)
    if code in _GUEST:
        return GuestError(message)
    # The connection itself broke (libvirtd restarted or went away mid-call): "client socket is
    # closed", "Cannot recv data", "connection closed" all come from libvirt's RPC layer.
    if code in _HOST or err.get_error_domain() == libvirt.VIR_FROM_RPC:
        return HostError(f"host unavailable: {message}" if code not in _HOST else message)
    return VmdeckError(message)


@contextlib.contextmanager
def libvirt_errors(context: str = "") -> Iterator[None]:
    """`with libvirt_errors("start web1"):` — libvirt failures leave as vmdeck errors."""
    try:
        yield
    except libvirt.libvirtError as err:
        raise translate(err, context) from err


class Host:
    """An open connection to one libvirtd, with the host facts vmdeck needs often."""

    def __init__(self, conn: libvirt.virConnect, uri: str) -> None:
        self.conn = conn
        self.uri = uri

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri or self.uri.split("://", 1)[1].startswith("/")

    def hostname(self) -> str:
        with libvirt_errors("hostname"):
            return self.conn.getHostname()

    def lookup(self, name: str) -> libvirt.virDomain:
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise NotFound(f"no VM named {name!r} on {self.uri}") from err
            raise translate(err, name) from err

    def exists(self, name: str) -> bool:
        try:
            self.conn.lookupByName(name)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return False
            raise translate(err, name) from err
        return True

    def close(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.close()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def connect(uri: str | None = None) -> Host:
    """Open `uri` (default: $VMDECK_URI, then qemu:///system); HostError when libvirtd is not there."""
    target = uri or os.environ.get("VMDECK_URI") or DEFAULT_URI
    try:
        conn = libvirt.open(target)
    except libvirt.libvirtError as err:
        detail = (err.get_error_message() or str(err)).strip().splitlines()[0]
        raise HostError(f"cannot connect to libvirt at {target} (is libvirtd running?): {detail}") from err
    return Host(conn, target)

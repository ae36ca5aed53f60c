"""Port forwards put back on this machine's firewall when `vmdeck serve` starts and after a VM starts (api layer).

The nftables table lives in the kernel: a host reboot empties it, a libvirtd restart rebuilds libvirt's
chains without vmdeck's accept rules. vmdeck.usecases.forwards.reapply rebuilds both from the database;
here it runs once at the server's start and for each local VM that starts (libvirt's lifecycle event, so
a VM started by virsh or by libvirt's autostart counts too), each in a thread of its own: libvirt's event
loop and the server's start never wait for nft.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from vmdeck.errors import VmdeckError

__all__ = ["start"]

log = logging.getLogger("vmdeck.api.forwards")


def _reapply(ctx: Any, vm: str | None) -> None:
    from vmdeck.api.actors import services_of
    from vmdeck.usecases.forwards import reapply

    try:
        count = reapply(services_of(ctx), ctx.host.get(), vm)
        if count and vm is None:
            log.info("port forwards applied: %d", count)
    except VmdeckError as err:
        log.warning("port forwards%s not applied: %s", f" of {vm}" if vm else "", err)


def _in_thread(ctx: Any, vm: str | None) -> None:
    threading.Thread(target=_reapply, args=(ctx, vm), name="vmdeck-forwards", daemon=True).start()


def start(ctx: Any, hub: Any) -> None:
    """Apply every forward now; with an event hub, a VM's again whenever it starts."""
    _in_thread(ctx, None)
    if hub is not None:
        hub.on_started.append(lambda vm: _in_thread(ctx, vm))

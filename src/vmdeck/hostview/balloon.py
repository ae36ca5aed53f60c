"""Set a running VM's balloon: how much of its configured memory the guest may keep (core layer).

The virtio balloon driver in the guest takes pages from the guest's allocator
and reports them to QEMU, which gives them back to the host (madvise
DONTNEED). With Linux's virtio_balloon the guest's MemTotal drops by what the
balloon holds (unless the device uses deflate-on-oom/free page reporting).
"""

from __future__ import annotations

from vmdeck.errors import InvalidInput
from vmdeck.host.connection import Host
from vmdeck.vm.state import LIVE_STATES, require_state

__all__ = ["set_balloon"]

MIN_MIB = 32  # below this a Linux guest cannot run; libvirt would accept it and the guest would OOM


def set_balloon(host: Host, name: str, mib: int, *, persist: bool = False) -> int:
    """Set VM `name`'s current memory to `mib` MiB (live; also in the config with persist). Returns KiB set."""
    dom = host.lookup(name)
    require_state(dom, LIVE_STATES, "set the balloon of")
    maximum_kib = dom.max_memory_kib()
    if mib < MIN_MIB:
        raise InvalidInput(f"{mib} MiB is too little for a guest: the balloon target must be at least {MIN_MIB} MiB",
                           field="mib")
    if mib * 1024 > maximum_kib:
        raise InvalidInput(f"{mib} MiB is more than VM {name!r} is configured with ({maximum_kib // 1024} MiB): "
                           "the balloon can only give back memory the VM was started with", field="mib")
    dom.set_memory(mib * 1024, live=True, config=persist)
    return mib * 1024

"""What the backup tests share: the guest's raw-sector markers and a VM's disk."""

from __future__ import annotations

from itest_support import READY_TIMEOUT_S, wait_for

from vmdeck.domxml.parse import parse_domain
from vmdeck.host.connection import Host
from vmdeck.vm.agent import guest_exec


def sh(host: Host, vm: str, command: str) -> str:
    result = guest_exec(host.lookup(vm), ["/bin/sh", "-c", command], timeout=120)
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode("latin-1")


def write_marker(host: Host, vm: str, text: str) -> None:
    # Raw sectors of the data disk: no filesystem needed; fsync so the host sees it at once.
    sh(host, vm, f"printf {text} | dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null")


def read_marker(host: Host, vm: str) -> str:
    # The page cache dropped first: what the disk holds, not what the guest remembers writing.
    return str(wait_for(lambda: sh(host, vm, "echo 3 > /proc/sys/vm/drop_caches; head -c 8 /dev/vda"),
                        timeout=READY_TIMEOUT_S))


def disk_of(host: Host, vm: str) -> str:
    return next(d.source for d in parse_domain(host.lookup(vm).xml(inactive=True)).disks
                if d.device == "disk" and d.source)

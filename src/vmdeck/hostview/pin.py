"""Pin a VM's vCPU threads or its emulator threads to host CPUs, through libvirt (core layer).

Going through libvirt (not sched_setaffinity on the thread) matters: libvirt
records the pinning in the domain (<cputune><vcpupin>/<emulatorpin>), applies
it to the thread and its cgroup, and re-applies it when the VM starts again
if asked to persist it (AFFECT_CONFIG).
"""

from __future__ import annotations

from vmdeck.errors import InvalidInput, StateError
from vmdeck.host.connection import Host
from vmdeck.host.libvirt_api import Domain
from vmdeck.hostview.procfs import format_cpu_list, parse_cpu_list
from vmdeck.vm.state import ACTIVE, current_state

__all__ = ["cpumap", "pin_vcpu", "pin_emulator"]


def cpumap(cpus: str, host_pcpus: int) -> tuple[bool, ...]:
    """ "0,2-3" on a 4-CPU host -> (True, False, True, True); InvalidInput for a bad or out-of-range list."""
    try:
        chosen = parse_cpu_list(cpus)
    except ValueError as err:
        raise InvalidInput(f"invalid CPU list {cpus!r} ({err}): use e.g. 1 or 0-1 or 0,2", field="cpus") from err
    if not chosen:
        raise InvalidInput("the CPU list is empty", field="cpus")
    beyond = [c for c in chosen if c >= host_pcpus]
    if beyond:
        raise InvalidInput(f"host CPU {beyond[0]} does not exist: this host has CPUs 0-{host_pcpus - 1}",
                           field="cpus")
    return tuple(i in chosen for i in range(host_pcpus))


def _live(dom: Domain, persist: bool, action: str) -> bool:
    """Whether the change goes to the running VM (it runs); StateError when it would go nowhere."""
    live = current_state(dom) in ACTIVE
    if not live and not persist:
        raise StateError(dom.name, current_state(dom), "running (or use --persist to change the config)", action)
    return live


def pin_vcpu(host: Host, name: str, vcpu: int, cpus: str, *, persist: bool = False) -> str:
    """Pin vCPU `vcpu` of VM `name` to host CPUs `cpus`; returns the normalized CPU list."""
    dom = host.lookup(name)
    pcpus = host.conn.info()[2]
    vcpus = dom.vcpu_count(maximum=current_state(dom) not in ACTIVE)
    if not 0 <= vcpu < vcpus:
        raise InvalidInput(f"VM {name!r} has vCPUs 0-{vcpus - 1}, not {vcpu}", field="vcpu")
    mask = cpumap(cpus, pcpus)
    live = _live(dom, persist, "pin a vCPU of")
    dom.pin_vcpu(vcpu, mask, live=live, config=persist)
    return format_cpu_list([i for i, on in enumerate(mask) if on])


def pin_emulator(host: Host, name: str, cpus: str, *, persist: bool = False) -> str:
    """Pin the emulator threads (main loop, I/O, VNC ... everything but vCPUs) of VM `name`."""
    dom = host.lookup(name)
    pcpus = host.conn.info()[2]
    mask = cpumap(cpus, pcpus)
    live = _live(dom, persist, "pin the emulator threads of")
    dom.pin_emulator(mask, live=live, config=persist)
    return format_cpu_list([i for i, on in enumerate(mask) if on])

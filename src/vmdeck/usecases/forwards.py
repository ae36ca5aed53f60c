"""Port forwards of a VM: add, remove, and keeping the firewall in step (use-case layer).

`vmdeck forward add|list|remove` and `/api/vms/{name}/forwards` call these functions. Adding checks,
before anything exists, in this order: the caller's role (operator), the input (ports, protocol,
address), the VM's NIC on a vmdeck NAT network, the port not forwarded already, the project's
`forwards` quota, and no process of this host holding the port. Then the NIC's address is reserved (when
it has no reservation yet), the row stored and the firewall rebuilt; a failing step undoes the ones
before it.

The firewall is always rebuilt from every stored forward (vmdeck.vm.forward_firewall.apply), under a
lock file of this machine, so a command and `vmdeck serve` changing forwards at once cannot leave the
rules of one without the other's. `reapply` runs at `vmdeck serve`'s start and after a VM starts;
`vm_deleted` from the VM delete use case.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Collection, Iterator
from pathlib import Path

from vmdeck.errors import InvalidInput, NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.store.forwards import Forward, Forwards
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited, project_of_vm
from vmdeck.usecases.permissions import authorize
from vmdeck.usecases.services import Services
from vmdeck.vm import forward_firewall
from vmdeck.vm.forward_rules import check_address, check_proto, parse_ports
from vmdeck.vm.forwards import guest_address, rules_for, target, undo_reservation

__all__ = ["add", "remove", "list_forwards", "reapply", "vm_deleted", "ACTION"]

ACTION = "vm.forwards"
_LOCK = Path(os.environ.get("VMDECK_FORWARDS_LOCK", "/run/lock/vmdeck-forwards.lock"))


@contextlib.contextmanager
def _firewall_lock() -> Iterator[None]:
    """One change of this machine's forwards at a time (a command beside `vmdeck serve`)."""
    path = _LOCK if _LOCK.parent.is_dir() else Path("/tmp/vmdeck-forwards.lock")
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apply(store: Forwards, host: Host, *, leave_out: Collection[int] = ()) -> None:
    """Rebuild the firewall from every stored forward but `leave_out`; stored addresses follow the reservations."""
    pairs = rules_for(host, [f for f in store.all() if f.id not in leave_out])
    for forward, rule in pairs:
        if rule.guest_ip != forward.guest_ip:
            store.set_guest_ip(forward.id, rule.guest_ip)
    forward_firewall.apply(rule for _f, rule in pairs)


def list_forwards(svc: Services, vm: str | None = None, projects: list[str] | None = None) -> list[Forward]:
    """The forwards of `vm`, or of `projects`, or (None, None) every one."""
    store = Forwards(svc.db)
    if vm is not None:
        return store.of_vm(vm)
    return store.all() if projects is None else store.of_projects(projects)


def add(svc: Services, actor: Actor, host: Host, vm: str, ports: str, *, proto: str = "tcp",
        address: str = "127.0.0.1") -> Forward:
    project = project_of_vm(svc, actor, ACTION, host, vm)
    with audited(svc, actor, ACTION, project, vm, status=201):
        authorize(actor, ACTION, project)
        host_port, guest_port = parse_ports(ports)
        proto, address = check_proto(proto), check_address(address)
        where = target(host, vm)
        store = Forwards(svc.db)
        if project is not None:
            svc.tenancy.ensure_project(project)
        store.check_room(project, address, proto, host_port)
        forward_firewall.port_free(address, proto, host_port)
        with _firewall_lock():
            ip, reserved = guest_address(host, vm, where)
            try:
                made = store.add(project, vm, where.network.name, where.mac, address, proto, host_port, ip,
                                 guest_port)
                try:
                    _apply(store, host)
                except BaseException:
                    store.remove(made.id)
                    with contextlib.suppress(VmdeckError):
                        _apply(store, host)
                    raise
            except BaseException:
                if reserved is not None:
                    undo_reservation(host, where.network.name, reserved)
                raise
    return made


def _chosen(store: Forwards, vm: str, host_port: int, proto: str, address: str | None) -> Forward:
    found = [f for f in store.of_vm(vm) if f.host_port == host_port and f.proto == proto
             and (address is None or f.address == address)]
    if not found:
        raise NotFound(f"VM {vm!r} has no forward of port {host_port}/{proto}"
                       + (f" on {address}" if address else ""))
    if len(found) > 1:
        raise InvalidInput(f"VM {vm!r} forwards port {host_port}/{proto} on several addresses "
                           f"({', '.join(f.address for f in found)}): name one with --address", field="address")
    return found[0]


def remove(svc: Services, actor: Actor, host: Host, vm: str, host_port: int, *, proto: str = "tcp",
           address: str | None = None, forward_id: int | None = None) -> Forward:
    """Remove one forward of `vm`: by port (and protocol, and address when it has several), or by id (the API)."""
    project = project_of_vm(svc, actor, ACTION, host, vm)
    with audited(svc, actor, ACTION, project, vm):
        authorize(actor, ACTION, project)
        store = Forwards(svc.db)
        if forward_id is not None:
            gone = next((f for f in store.of_vm(vm) if f.id == forward_id), None)
            if gone is None:
                raise NotFound(f"VM {vm!r} has no forward {forward_id}")
        else:
            gone = _chosen(store, vm, host_port, check_proto(proto), check_address(address) if address else None)
        with _firewall_lock():
            _apply(store, host, leave_out={gone.id})  # the rule goes first: a failure leaves the row, and the rule
            store.remove(gone.id)
    return gone


def reapply(svc: Services, host: Host, vm: str | None = None) -> int:
    """Put this machine's forward rules back (`vmdeck serve` starting, VM `vm` started): how many apply.
    A VM without forwards costs one query."""
    store = Forwards(svc.db)
    if not host.is_local or (vm is not None and not store.of_vm(vm)):
        return 0
    if not store.all() and not forward_firewall.table_exists():
        return 0  # a host that never had a forward: its firewall is left alone
    with _firewall_lock():
        _apply(store, host)
    return len(store.all())


def vm_deleted(svc: Services, host: Host, vm: str) -> list[Forward]:
    """VM `vm` is gone: its forwards and their rules go too. The rows go first; a firewall that cannot be
    rebuilt now is rebuilt by the next change or start (the rules then point at an address no one has)."""
    store = Forwards(svc.db)
    gone = store.remove_vm(vm)
    if gone and host.is_local:
        with _firewall_lock(), contextlib.suppress(VmdeckError):
            _apply(store, host)
    return gone

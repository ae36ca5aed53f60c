"""A project's virtual networks: create, delete, reserve an address; which libvirt networks a project may use
(use-case layer).

`vmdeck network ...`, `vmdeck project networks` and the REST API (/api/networks...) call these. A network
belongs to a project (vmdeck.vm.networks keeps it in libvirt's network metadata): its managers create and
delete it and reserve addresses on it; another project's network, or one vmdeck did not make, is the 404 of a
network that does not exist to anyone but a host administrator, as VMs are.
"""

from __future__ import annotations

from vmdeck.domxml.network import NetworkView, Reservation
from vmdeck.errors import NotFound, VmdeckError
from vmdeck.host.connection import Host
from vmdeck.store.quota import network_room
from vmdeck.usecases.actor import Actor
from vmdeck.usecases.audit import audited
from vmdeck.usecases.permissions import NotPermitted, authorize, authorize_in
from vmdeck.usecases.services import Services

__all__ = ["create", "delete", "reserve", "allowed_networks"]

ACTION = "network.manage"


def create(svc: Services, actor: Actor, host: Host, name: str, *, mode: str = "nat", subnet: str,
           dhcp_range: str | None = None, project: str | None = None) -> NetworkView:
    """A network owned by `project` (its managers, or administrators; only administrators make one of no
    project)."""
    from vmdeck.vm.networks import create_network

    with audited(svc, actor, ACTION, project, None, status=201):
        if project is None and not actor.admin:
            raise NotPermitted("creating a network needs the manager role in its project (name it: project)")
        authorize_in(actor, ACTION, project)
        if project is None:
            return create_network(host, name, mode=mode, subnet=subnet, dhcp_range=dhcp_range)
        # The project's `networks` quota, checked (under its lock) before anything exists.
        svc.tenancy.ensure_project(project)
        with network_room(svc.db, host, project):
            view = create_network(host, name, mode=mode, subnet=subnet, dhcp_range=dhcp_range, project=project)
    return view


def _seen(svc: Services, actor: Actor, host: Host, name: str, vm: str | None = None) -> NetworkView:
    """The network, if the caller may see it: a refusal (no such network, or not visible) is logged without a
    project, as the API's policy logs a VM it cannot see."""
    from vmdeck.vm.networks import show_network

    try:
        view = show_network(host, name)
        if not actor.admin and (not view.vmdeck or view.project is None or actor.role_in(view.project) is None):
            raise NotFound(f"no network named {name!r}")
    except VmdeckError as refused:
        svc.audit.record(actor.user, actor.via or actor.origin, None, ACTION, vm, actor.target, refused.http_status,
                         f"refused: {refused.message}")
        actor.recorded = True
        raise
    return view


def delete(svc: Services, actor: Actor, host: Host, name: str) -> None:
    """Delete a network no VM uses."""
    from vmdeck.vm.networks import delete_network

    view = _seen(svc, actor, host, name)
    with audited(svc, actor, ACTION, view.project, None):
        authorize_in(actor, ACTION, view.project)
        delete_network(host, name)


def reserve(svc: Services, actor: Actor, host: Host, network: str, vm: str, ip: str | None = None) -> Reservation:
    """A fixed address for `vm`'s NIC on `network` (a static DHCP lease); the VM must be the network's project's."""
    from vmdeck.vm.networks import reserve as reserve_address
    from vmdeck.vm.project import project_of

    view = _seen(svc, actor, host, network, vm)
    with audited(svc, actor, ACTION, view.project, vm, status=201):
        authorize_in(actor, ACTION, view.project)
        if not actor.admin and project_of(host, vm) != view.project:
            raise NotFound(f"no VM named {vm!r} on {host.uri}")
        made = reserve_address(host, network, vm, ip)
    return made


def allowed_networks(svc: Services, actor: Actor, project: str, *, allow: list[str], disallow: list[str]
                     ) -> list[str]:
    """Let `project`'s VMs use (or no longer use) libvirt networks besides its own: the host's administrator's
    decision. The networks it may use now."""
    if not allow and not disallow:
        return svc.tenancy.networks(project)
    with audited(svc, actor, "project.manage", project, None):
        authorize(actor, "project.manage", project)
        allowed = svc.tenancy.networks(project)
        for network in allow:
            allowed = svc.tenancy.allow_network(project, network)
        for network in disallow:
            allowed = svc.tenancy.disallow_network(project, network)
    return allowed

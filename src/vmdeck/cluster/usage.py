"""A project's use on every host of the fleet, counted in parallel under the fleet's deadlines (core layer).

Project quotas hold across all hosts, so a quota check needs the project's VMs of every registered
host: each host is asked at once (vmdeck.cluster.fleet), the answer takes as long as the slowest host
that answers, and a host that does not answer comes back as an error for the caller to decide about
(the API's quota code counts it from its last successful count, see docs/TENANCY.md).

Besides the project's own use, each count names every project that has a VM on that host: a later
count of another project that finds the host unreachable can then tell "had nothing there" from
"never counted there".
"""

from __future__ import annotations

from dataclasses import dataclass

from vmdeck.cluster.fleet import Answer, Fleet
from vmdeck.cluster.registry import HostEntry
from vmdeck.host.connection import Host
from vmdeck.vm.project import Usage, project_usage, vm_projects

__all__ = ["HostCount", "count_on", "count_everywhere"]


@dataclass(frozen=True)
class HostCount:
    """What one project takes on one host, and which projects have VMs there at all."""

    usage: Usage
    projects: frozenset[str]


def count_on(host: Host, project: str) -> HostCount:
    owners = vm_projects(host)  # one metadata read per VM, shared by both answers
    present = frozenset(p for p in owners.values() if p is not None)
    return HostCount(project_usage(host, project, owners=owners), present)


def count_everywhere(fleet: Fleet, project: str, *, deadline: float | None = None) -> list[Answer[HostCount]]:
    """The project's use on each registered host (all at once); a silent host's answer carries its error."""
    def count(host: Host, _entry: HostEntry) -> HostCount:
        return count_on(host, project)

    return fleet.each(count, deadline=deadline)

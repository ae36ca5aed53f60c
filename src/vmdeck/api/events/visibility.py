"""Who sees what of the stream: a member only their projects' VMs, an administrator everything (api layer).

Applied per browser as its message leaves (vmdeck.api.events.stream), so one fan-out serves
every user: a "state"/"device"/"inventory" message about a VM is shown to whoever may see
that VM's project (vmdeck.api.policy.visible); a stats sample is cut to the visible VMs, and its
host-wide figures go to administrators only (the host page is theirs). Messages about no VM
(hello, a re-read after a reconnect) go to everyone.
"""

from __future__ import annotations

from vmdeck.api.events.messages import Message, Outgoing, StatsSample
from vmdeck.api.policy import visible
from vmdeck.store.accounts import Principal

__all__ = ["for_principal"]


def for_principal(principal: Principal, item: Outgoing) -> Message | None:
    """What of `item` the caller may see, as the JSON message to send, else None (nothing to send)."""
    if isinstance(item, StatsSample):
        vms = {name: sample.as_json() for name, sample in item.vms.items()
               if visible(principal, item.projects.get(name))}
        shown: Message = {"type": "stats", "at": item.at, "vms": vms}
        if principal.admin:
            shown["host"] = item.host.as_json()
        return shown if vms or "host" in shown else None
    if principal.admin or "vm" not in item:
        return item
    project = item.get("project")
    return item if visible(principal, project if isinstance(project, str) else None) else None

"""What travels through the event stream, typed: libvirt's raw records, the JSON messages, the stats sample.

Three shapes, one per stage:
- `EventRecord`: what a libvirt callback leaves on the bounded queue (vmdeck.api.events.source). It is
  made on libvirt's event thread, so it holds only what the callback was handed: no lookup made it.
- `Message`: a JSON object for the browsers ("state", "inventory", "device", "hello", and the
  "drain"/"migration" lines other routes publish). web/static/js/*.js read these keys.
- `StatsSample`: one bulk sample of every VM and the host, fanned out as one object and cut per
  browser by vmdeck.api.events.visibility (a member sees their projects' VMs, no host figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from vmdeck.host.libvirt_api import Domain

__all__ = ["JsonValue", "Message", "EventRecord", "VmSample", "HostSample", "StatsSample", "Outgoing",
           "resync_message"]

# Read-only containers, so a list[str] or dict[str, int] is a JSON value as it is (no copies to widen them).
JsonValue: TypeAlias = "str | int | float | bool | None | Sequence[JsonValue] | Mapping[str, JsonValue]"
Message: TypeAlias = dict[str, JsonValue]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One libvirt event as its callback saw it. `dom` is the binding's handle: the worker asks it
    (project, ...) off libvirt's thread; `vm` is the name the binding already holds (no call to libvirtd)."""

    host: str  # "local", or the registry's name of the host that sent it
    vm: str
    kind: Literal["lifecycle", "device"]
    event: str  # lifecycle: started, stopped, ... (vmdeck.host.libvirt_api); device: ""
    detail: int
    dom: Domain


@dataclass(frozen=True, slots=True)
class VmSample:
    cpu_pct: float | None  # percent of one host CPU, as top shows a process: 2 busy vCPUs read 200
    rss_mib: float | None
    uptime_s: float | None
    addresses: tuple[str, ...]

    def as_json(self) -> Message:
        return {"cpu_pct": self.cpu_pct, "rss_mib": self.rss_mib, "uptime_s": self.uptime_s,
                "addresses": list(self.addresses)}


@dataclass(frozen=True, slots=True)
class HostSample:
    cpu_pct: float | None  # all host CPUs together, 0..100
    memory_used_mib: float | None
    memory_total_mib: float | None

    def as_json(self) -> Message:
        return {"cpu_pct": self.cpu_pct, "memory_used_mib": self.memory_used_mib,
                "memory_total_mib": self.memory_total_mib}


@dataclass(frozen=True)
class StatsSample:
    """One sample of every VM the server sees; `projects` is for the per-browser cut, never sent."""

    at: float
    vms: dict[str, VmSample]
    host: HostSample
    projects: dict[str, str | None] = field(default_factory=dict)


# What a browser's queue holds: a message, or the shared stats sample not yet cut for that browser.
Outgoing: TypeAlias = "Message | StatsSample"


def resync_message(reason: str, host: str | None = None) -> Message:
    """"Re-read everything": the pages reload their lists and the VM they show (libvirtd reconnected,
    events were dropped, a browser fell behind)."""
    message: Message = {"type": "inventory", "reason": reason}
    if host is not None:
        message["host"] = host
    return message

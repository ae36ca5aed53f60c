"""The live event stream: libvirt's event API and bulk stats pushed to browsers over a websocket (api layer).

libvirt calls back when a domain starts, stops, pauses, is defined ... (no polling). One module
per job:
- source.py: registers on the local and every remote host's connection, re-registers after a
  reconnect; its callbacks, on libvirt's event thread, only queue a small record (bounded);
- worker.py: a thread that turns records into messages, asking libvirt what they need (project);
- stats.py and addresses.py: the sparklines' samples, one bulk query per interval while someone
  watches, and the guest addresses asked of the agent in the background;
- fanout.py: every browser's bounded queue (and what is dropped when a browser falls behind);
- visibility.py: what each user may see of it;
- stream.py: the websocket route; hub.py puts the parts together; messages.py types what flows.
"""

from __future__ import annotations

from vmdeck.api.events.hub import EventHub
from vmdeck.api.events.stream import router
from vmdeck.api.events.visibility import for_principal
from vmdeck.host.events import ensure_event_loop

__all__ = ["ensure_event_loop", "EventHub", "for_principal", "router"]

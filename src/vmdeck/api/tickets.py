"""Console tickets: random, single-use, bound to one user and one VM, valid for seconds (api layer).

A page asks for a ticket over the authenticated REST API and opens the console
websocket with it. The ticket names no host or port: the server maps it to the
VM, and the VM's live XML to the loopback socket, so a client can never point
the proxy somewhere else.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vmdeck.api.errors import Forbidden

__all__ = ["Ticket", "TicketBook", "KINDS"]

KINDS = ("vnc", "serial")


@dataclass(frozen=True)
class Ticket:
    value: str
    user_id: int
    vm: str
    kind: str
    expires: float


class TicketBook:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._tickets: dict[str, Ticket] = {}
        self._lock = threading.Lock()

    def issue(self, user_id: int, vm: str, kind: str) -> Ticket:
        now = self.clock()
        ticket = Ticket(secrets.token_urlsafe(32), user_id, vm, kind, now + self.ttl)
        with self._lock:
            # Drop the expired ones here, so the book never grows with tickets nobody redeemed.
            for value in [v for v, t in self._tickets.items() if t.expires < now]:
                del self._tickets[value]
            self._tickets[ticket.value] = ticket
        return ticket

    def redeem(self, value: str | None, user_id: int | None, vm: str, kind: str) -> Ticket:
        """The ticket, removed from the book (single use); Forbidden saying why when it does not fit."""
        if not value:
            raise Forbidden("a console ticket is required")
        with self._lock:
            ticket = self._tickets.pop(value, None)
        if ticket is None:
            raise Forbidden("unknown or already used console ticket")
        if ticket.expires < self.clock():
            raise Forbidden("the console ticket expired")
        if ticket.vm != vm or ticket.kind != kind:
            raise Forbidden("the console ticket is for another console")
        if user_id is None or ticket.user_id != user_id:
            raise Forbidden("the console ticket belongs to another user")
        return ticket

"""Console tickets: random, single-use, bound to one user and one VM, valid for seconds (api layer).

A page asks for a ticket over the authenticated REST API and opens the console
websocket with it. The ticket names no host or port: the server maps it to the
VM, and the VM's live XML to the loopback socket, so a client can never point
the proxy somewhere else.

With the control plane's database (the server's case) the tickets live there, as their SHA-256:
several `vmdeck serve` behind one address share it, so a ticket one of them issued opens the
console on whichever the browser's websocket reaches. Redeeming is one DELETE ... RETURNING: two
servers handed the same ticket at once cannot both spend it. Without a database (tests of the
book alone) they live in this process.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from vmdeck.api.errors import Forbidden
from vmdeck.store.db import ConsoleTicket

__all__ = ["Ticket", "TicketBook", "KINDS", "LINK_KINDS"]

KINDS = ("vnc", "serial", "ssh")  # ssh: the tunnel of vmdeck.api.ssh_tunnel
# A console link (vmdeck.api.console_link): the link itself, then the screen it opens. Bearer tickets: who
# holds one may use it once, signed in or not; they are never issued by the ticket route.
LINK_KINDS = ("link", "vnc-link")


@dataclass(frozen=True)
class Ticket:
    value: str
    user_id: int
    vm: str
    kind: str
    expires: float
    credential: str | None = None  # a link's: what asked for it (vmdeck.store.accounts.credential_reference)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class TicketBook:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.time,
                 db: sessionmaker[Session] | None = None) -> None:
        self.ttl = ttl
        # Wall-clock time: a ticket's expiry is read by the other servers too.
        self.clock = clock
        self.db = db
        self._tickets: dict[str, Ticket] = {}
        self._lock = threading.Lock()

    def issue(self, user_id: int, vm: str, kind: str, *, ttl: float | None = None,
              credential: str | None = None) -> Ticket:
        now = self.clock()
        ticket = Ticket(secrets.token_urlsafe(32), user_id, vm, kind, now + (self.ttl if ttl is None else ttl),
                        credential)
        if self.db is not None:
            with self.db.begin() as s:
                # Drop the expired ones here, so the table never grows with tickets nobody redeemed.
                s.execute(delete(ConsoleTicket).where(ConsoleTicket.expires_at < now))
                s.add(ConsoleTicket(digest=_digest(ticket.value), user_id=user_id, vm=vm, kind=kind,
                                    expires_at=ticket.expires, credential=credential))
            return ticket
        with self._lock:
            for value in [v for v, t in self._tickets.items() if t.expires < now]:
                del self._tickets[value]
            self._tickets[ticket.value] = ticket
        return ticket

    def _take(self, value: str) -> Ticket | None:
        """The ticket, removed (single use): by this process or any server sharing the database."""
        if self.db is None:
            with self._lock:
                return self._tickets.pop(value, None)
        with self.db.begin() as s:
            row = s.execute(delete(ConsoleTicket).where(ConsoleTicket.digest == _digest(value))
                            .returning(ConsoleTicket.user_id, ConsoleTicket.vm, ConsoleTicket.kind,
                                       ConsoleTicket.expires_at, ConsoleTicket.credential)).first()
        return None if row is None else Ticket(value, int(row[0]), str(row[1]), str(row[2]), float(row[3]), row[4])

    def redeem_bearer(self, value: str | None, kind: str, vm: str | None = None) -> Ticket:
        """A link's ticket (LINK_KINDS), removed from the book: the ticket is the credential, so no user is
        checked here; Forbidden saying why when it does not fit."""
        if kind not in LINK_KINDS:
            raise Forbidden(f"a {kind} ticket is not a bearer ticket")
        if not value:
            raise Forbidden("this link is incomplete")
        ticket = self._take(value)
        if ticket is None:
            raise Forbidden("this link is unknown or was already used: ask for a new one")
        if ticket.expires < self.clock():
            raise Forbidden("this link expired: ask for a new one")
        if ticket.kind != kind or (vm is not None and ticket.vm != vm):
            raise Forbidden("this link is for another console")
        return ticket

    def redeem(self, value: str | None, user_id: int | None, vm: str, kind: str) -> Ticket:
        """The ticket, removed from the book (single use); Forbidden saying why when it does not fit."""
        if not value:
            raise Forbidden("a console ticket is required")
        ticket = self._take(value)
        if ticket is None:
            raise Forbidden("unknown or already used console ticket")
        if ticket.expires < self.clock():
            raise Forbidden("the console ticket expired")
        if ticket.vm != vm or ticket.kind != kind:
            raise Forbidden("the console ticket is for another console")
        if user_id is None or ticket.user_id != user_id:
            raise Forbidden("the console ticket belongs to another user")
        return ticket

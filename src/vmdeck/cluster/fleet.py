"""Connections to every registered host, each opened and called under a deadline (core layer).

libvirt's client calls block, and a host that stopped answering (a hung libvirtd, a dropped
route) can block one for minutes: every connect and every per-host query runs in a daemon thread
that the caller waits for only until its deadline. A host that misses it is reported unreachable
with the reason, and the other hosts' answers are used: N hosts take about as long as the slowest
one that answers, never the sum. An abandoned thread finishes (or dies with the process) on its
own; daemon threads never hold up the exit of a CLI command.

`vmdeck serve` keeps one Fleet for its lifetime (connections reused, reopened when one dies,
libvirt keepalive on so a dead peer is noticed); the CLI opens one per command.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from vmdeck.cluster.registry import HostEntry, Registry, check_entry
from vmdeck.errors import HostError, InvalidInput, VmdeckError
from vmdeck.host.connection import Host, connect

__all__ = ["Fleet", "Answer", "CONNECT_TIMEOUT_S", "CALL_TIMEOUT_S", "register_host"]

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Answer(Generic[T]):
    """One host's answer to a fleet-wide query: a value, or why there is none."""

    entry: HostEntry
    value: T | None = None
    error: VmdeckError | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class Fleet:
    """The registered hosts and their open connections."""

    def __init__(self, entries: list[HostEntry] | None = None, *, registry: Registry | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT_S, call_timeout: float = CALL_TIMEOUT_S,
                 keepalive: bool = False) -> None:
        self._entries = entries
        self.registry = registry or Registry()
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        # Keepalive needs libvirt's event loop running in this process (vmdeck serve has one).
        self.keepalive = keepalive
        self._hosts: dict[str, Host] = {}
        self._connecting: dict[str, threading.Thread] = {}
        self._errors: dict[str, HostError] = {}
        self._lock = threading.Lock()

    @property
    def entries(self) -> list[HostEntry]:
        # Re-read on every use unless fixed at construction: `vmdeck serve` sees `host add` at once.
        return list(self._entries) if self._entries is not None else self.registry.entries()

    def entry(self, name: str) -> HostEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        return self.registry.get(name)  # raises NotFound naming the known hosts

    # --- connections ------------------------------------------------------------------------------
    def host(self, name_or_entry: str | HostEntry, timeout: float | None = None) -> Host:
        """The open connection to one host; HostError when it cannot be opened within the deadline."""
        entry = name_or_entry if isinstance(name_or_entry, HostEntry) else self.entry(name_or_entry)
        uri = entry.connect_uri
        with self._lock:
            cached = self._hosts.get(uri)
            if cached is not None:
                if cached.conn.is_alive():  # local bookkeeping, no round trip
                    return cached
                del self._hosts[uri]
                cached.close()
            pending = self._connecting.get(uri)
            if pending is None or not pending.is_alive():
                pending = threading.Thread(target=self._open, args=(uri,), name=f"connect {entry.name}", daemon=True)
                self._connecting[uri] = pending
                self._errors.pop(uri, None)
                pending.start()
        waited = self.connect_timeout if timeout is None else timeout
        pending.join(waited)
        with self._lock:
            if uri in self._hosts:
                return self._hosts[uri]
            error = self._errors.get(uri)
        if error is not None:
            raise error
        raise HostError(f"host {entry.name} did not answer within {waited:g} s")

    def _open(self, uri: str) -> None:
        try:
            opened = connect(uri)
        except HostError as err:
            with self._lock:
                self._errors[uri] = err
            return
        if self.keepalive:
            # A peer that stops answering is closed after ~6 s instead of blocking calls for minutes.
            opened.conn.set_keepalive(2, 3)
        with self._lock:
            self._hosts[uri] = opened

    def close(self) -> None:
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            host.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- fleet-wide queries ------------------------------------------------------------------------
    def each(self, fn: Callable[[Host, HostEntry], T], *, deadline: float | None = None,
             entries: list[HostEntry] | None = None) -> list[Answer[T]]:
        """fn(host, entry) on every host in parallel; each answer within `deadline` seconds or an error."""
        chosen = self.entries if entries is None else entries
        limit = self.connect_timeout + self.call_timeout if deadline is None else deadline
        results: dict[str, Answer[T]] = {}
        started = time.monotonic()

        def run(entry: HostEntry) -> None:
            begin = time.monotonic()
            try:
                value = fn(self.host(entry, timeout=limit), entry)
                results[entry.name] = Answer(entry, value, None, time.monotonic() - begin)
            except VmdeckError as err:  # libvirt's own errors arrive translated (vmdeck.host.libvirt_api)
                results[entry.name] = Answer(entry, None, err, time.monotonic() - begin)

        # A thread per host even for one: the deadline holds for a single remote host too.
        threads = [threading.Thread(target=run, args=(e,), name=f"query {e.name}", daemon=True) for e in chosen]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, started + limit - time.monotonic()))
        answers = []
        for entry in chosen:
            answer = results.get(entry.name)
            if answer is None:
                answer = Answer(entry, None, HostError(f"host {entry.name} did not answer within {limit:g} s"), limit)
            answers.append(answer)
        return answers


def register_host(registry: Registry, entry: HostEntry, *, check: bool = True) -> HostEntry:
    """Add `entry` to the registry (`vmdeck host add`, POST /api/hosts); with `check`, only once its libvirtd
    answers within the deadlines. A host that does not answer is the caller's URI to fix (InvalidInput,
    naming libvirt's reason), not this server being unavailable."""
    check_entry(entry)  # a malformed URI is refused before it is handed to libvirt
    if check:
        try:
            with Fleet([entry]) as probe:
                probe.host(entry).hostname()
        except HostError as err:
            raise InvalidInput(f"host {entry.name} at {entry.uri} does not answer: {err} "
                               "(register it anyway with --no-check / \"check\": false)", field="uri") from err
    return registry.add(entry)

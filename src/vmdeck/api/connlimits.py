"""Bounds on connections to `vmdeck serve`: how long a client may take to say what it wants, how
much it may say before that, and how many connections one address may hold (api layer).

uvicorn closes a keep-alive connection idle after a response (timeout_keep_alive),
but nothing else: a connection that never sends a byte, or sends its headers one
byte a minute, stays open for ever, and a few thousand of those exhaust the
server's file descriptors. `GuardedHttpProtocol` is uvicorn's own httptools
protocol with three additions:

- HEADER_TIMEOUT_S from the connection's start (and from the start of each later
  request on it) to the end of the request's headers; past it the connection is
  closed (an answer may still be on its way: the deadline only covers waiting
  for headers, never a request being served);
- MAX_HEADER_BYTES of request line and headers; more is answered 431 and closed;
- MAX_PER_CLIENT open connections (websockets included) per client address;
  one more is closed at once. The local socket's connections have no address
  and are not counted (they are root's).

The request body's own bounds (size, time) are vmdeck.api.limits'.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["GuardedHttpProtocol", "HEADER_TIMEOUT_S", "MAX_HEADER_BYTES", "MAX_PER_CLIENT", "KEEP_ALIVE_S"]

HEADER_TIMEOUT_S = 10.0
MAX_HEADER_BYTES = 64 * 1024
MAX_PER_CLIENT = 64
KEEP_ALIVE_S = 5  # uvicorn's timeout_keep_alive, said here so that `vmdeck serve` and the docs agree


class GuardedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_headers = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        if address and sum(1 for c in self.connections if _address(c) == address) > MAX_PER_CLIENT:
            transport.close()  # uvicorn's connection_lost forgets it
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counting = self._in_headers
        super().data_received(data)
        if counting and self._in_headers:  # the headers did not end in this piece: all of it was headers
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                self._disarm()
                self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        if self._header_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_headers = True  # what comes next on this connection is the next request's headers

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
            self.transport.close()

    def _refuse_headers(self) -> None:
        body = b"request headers too large"
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        self.transport.close()


def _address(protocol: object) -> str | None:
    client = getattr(protocol, "client", None)
    return client[0] if client else None

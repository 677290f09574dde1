"""The HTTP server's bounds on what a client can hold (SPEC §10).

uvicorn closes a keep-alive connection left idle (`timeout_keep_alive`) but has no deadline for a
request's headers or body, and its only cap (`limit_concurrency`) answers 503 to new requests
once enough connections are open, idle ones included: 200 connections that never send a byte
held every one of their sockets for ever and, under that cap, shut real clients out.

`BoundedHttpTools` is uvicorn's httptools protocol with:

- a header deadline (`WAGATE_HEADER_TIMEOUT`): a connection must deliver a request's headers
  within it, counted from when it opened (or, on a kept-alive connection, from the request's
  first byte); a connection that sends nothing, or sends headers a byte at a time, is closed;
- a body deadline (`WAGATE_BODY_TIMEOUT`): the whole body within it, counted from the end of
  the headers (a drip of one byte a second is cut off, not a connection that is merely slow to
  start); the route reading it sees the client as gone;
- a cap on open connections (`WAGATE_MAX_CONNECTIONS`). When a connection arrives at the cap,
  room is made by closing the connection that has been idle longest (waiting for its headers,
  or kept alive between requests), else the one that has been sending its body longest, so a
  flood of idle or half-sent connections cannot starve a real client; only when every open
  connection has a request being answered is the newcomer answered 503 and closed;
- the keep-alive timeout as uvicorn has it (`WAGATE_KEEP_ALIVE_TIMEOUT`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("wagate.http")

_BUSY_BODY = (
    b'{"success": false, "error": {"code": "service_unavailable", '
    b'"message": "The server is at its connection limit; retry in a moment."}}'
)
BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\nretry-after: 1\r\n"
    b"content-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


_in_flight = 0


def requests_in_flight() -> int:
    """Requests this process's HTTP server has read and not yet finished answering, on every
    connection, those whose handler has not started yet included (uvicorn starts one task per
    request it reads; many may be read in one turn of the event loop before any of them runs).
    0 outside such a server (an ASGI app driven in process)."""
    return _in_flight


def _answered(_task: asyncio.Task[None]) -> None:
    global _in_flight
    _in_flight -= 1


@dataclass(frozen=True)
class ClientBounds:
    header_timeout: float
    body_timeout: float
    max_connections: int


class BoundedHttpTools(HttpToolsProtocol):
    """Made for one server by `bounded_protocol` (which sets `bounds`)."""

    bounds: ClientBounds = ClientBounds(10.0, 60.0, 1000)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None  # waiting for a request: evictable since then
        self._body_since: float | None = None  # receiving a body: evictable after idle ones

    # --- deadlines ------------------------------------------------------------------------

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self, what: str) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.info("closed a connection from %s: no complete %s in time", self._peer(), what)
            self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

    # --- the connection's life ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = time.monotonic()
        if not self._make_room():
            self.connections.discard(self)
            transport.write(BUSY_ANSWER)
            transport.close()
            return
        self._arm(self.bounds.header_timeout, "request headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a kept-alive connection's next request
            self._arm(self.bounds.header_timeout, "request headers")

    def on_headers_complete(self) -> None:
        self._idle_since = None
        self._body_since = time.monotonic()
        self._arm(self.bounds.body_timeout, "request body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._body_since = None
        super().on_message_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # Counted from the moment the request is read until its task ends, however it ends.
        global _in_flight
        known = set(self.tasks)
        super()._start_asgi_task(cycle, app)
        for task in self.tasks - known:
            _in_flight += 1
            task.add_done_callback(_answered)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._idle_since = time.monotonic()  # kept alive: idle until the next request

    # --- the cap --------------------------------------------------------------------------

    def _make_room(self) -> bool:
        """Whether this new connection may stay: under the cap, or once the connection idle
        longest was closed for it."""
        cap = self.bounds.max_connections
        if len(self.connections) <= cap:
            return True
        others = [
            c
            for c in self.connections
            if c is not self and isinstance(c, BoundedHttpTools) and not c.transport.is_closing()
        ]
        # Idle first (waiting for headers, or kept alive), then those still sending a body
        # (a real client's body takes milliseconds; a dripping one is what holds the slot).
        idle = [c for c in others if c._idle_since is not None]
        sending = [c for c in others if c._body_since is not None]
        if idle:
            oldest = min(idle, key=lambda c: c._idle_since or 0.0)
        elif sending:
            oldest = min(sending, key=lambda c: c._body_since or 0.0)
        else:
            log.warning("connection limit (%d) reached, every connection busy: refused one", cap)
            return False
        self.connections.discard(oldest)
        oldest._disarm()
        oldest.transport.close()
        return True


def bounded_protocol(bounds: ClientBounds) -> type[BoundedHttpTools]:
    """The protocol class to give uvicorn (`http=`) for these bounds."""
    return type("BoundedHttpTools", (BoundedHttpTools,), {"bounds": bounds})
